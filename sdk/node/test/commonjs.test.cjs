// require() gets the same implementation as import (one copy: instanceof works across both).
'use strict';

const assert = require('node:assert/strict');
const { test } = require('node:test');
const sdk = require('@velourcity/webhooks');
const { vectors, now, tolerance } = require('./vectors.cjs');

test('require() exposes verify and the error classes', () => {
  const v = vectors.find((x) => x.name === 'order.created');
  assert.equal(sdk.verify(v.headers, v.rawBody, v.secrets, { now, tolerance }).id, v.expect.event_id);
  assert.equal(new sdk.InvalidSignature('x').httpStatus, 401);
  assert.equal(new sdk.MissingHeader('x').httpStatus, 400);
  assert.ok(new sdk.StaleTimestamp('x') instanceof sdk.WebhookVerificationError);
});

test('import and require give the very same functions', async () => {
  const esm = await import('@velourcity/webhooks');
  assert.equal(esm.verify, sdk.verify);
  assert.equal(esm.InvalidSignature, sdk.InvalidSignature);
  assert.equal(esm.default, sdk);
});

test('no runtime dependencies', () => {
  const manifest = require('../package.json');
  assert.equal(manifest.dependencies, undefined);
  assert.equal(manifest.peerDependencies, undefined);
  for (const file of manifest.files) require('node:fs').accessSync(require('node:path').join(__dirname, '..', file));
});
