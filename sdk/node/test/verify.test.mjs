// verify() (ESM import) against requests signed by the pipeline: the Python SDK's outcome for each.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  checkSecrets,
  InvalidSignature,
  MissingHeader,
  StaleTimestamp,
  standardSignature,
  velourcitySignature,
  verify,
  WebhookVerificationError,
} from '@velourcity/webhooks';
import vectorsModule from './vectors.cjs';

const { now, tolerance, vectors } = vectorsModule;

function outcome(headers, rawBody, secrets) {
  try {
    const event = verify(headers, rawBody, secrets, { tolerance, now });
    return { status: 200, error: null, event_id: event.id };
  } catch (err) {
    if (!(err instanceof WebhookVerificationError)) throw err; // not a verification error: a bug
    return { status: err.httpStatus, error: err.name, event_id: null };
  }
}

describe('verify() gives the outcome of the Python SDK on every vector', () => {
  for (const v of vectors) {
    test(v.name, () => {
      assert.deepEqual(outcome(v.headers, v.rawBody, v.secrets), v.expect);
    });
  }

  test('the vectors cover the six event types and the Standard Webhooks library', () => {
    const types = new Set(vectors.filter((v) => v.event_type).map((v) => v.event_type));
    assert.equal(types.size, 6);
    assert.ok(vectors.some((v) => v.name.startsWith('Standard Webhooks library')));
  });

  test('header names are case-insensitive', () => {
    for (const v of vectors) {
      const upper = Object.fromEntries(Object.entries(v.headers).map(([k, x]) => [k.toUpperCase(), x]));
      assert.deepEqual(outcome(upper, v.rawBody, v.secrets), v.expect, v.name);
    }
  });

  test('rotation signatures split over repeated headers still verify', () => {
    const v = vectors.find((x) => x.name === 'rotation, receiver still has the old secret');
    const headers = { ...v.headers, 'webhook-signature': v.headers['webhook-signature'].split(' ') };
    assert.equal(outcome(headers, v.rawBody, v.secrets).status, 200);
  });
});

describe('accepts and rejects what the partner page promises', () => {
  const valid = vectors.find((v) => v.name === 'order.created');
  const check = (headers, body, secrets) => () => verify(headers, body, secrets, { tolerance, now });

  test('a valid webhook returns its event', () => {
    assert.deepEqual(check(valid.headers, valid.rawBody, valid.secrets)(), JSON.parse(valid.body));
  });

  test('tampering', () => {
    const body = Buffer.from(valid.rawBody.toString('utf8').replace('"order.created"', '"order.cancelled"'));
    assert.throws(check(valid.headers, body, valid.secrets), InvalidSignature);
  });

  test('a wrong secret', () => {
    const other = vectors.find((v) => v.name === 'wrong secret');
    assert.throws(check(valid.headers, valid.rawBody, other.secrets), InvalidSignature);
  });

  test('a stale timestamp', () => {
    assert.throws(() => verify(valid.headers, valid.rawBody, valid.secrets, { now: now + 301 }), (err) => {
      assert.ok(err instanceof StaleTimestamp);
      assert.equal(err.httpStatus, 401);
      return true;
    });
  });

  test('a missing signature', () => {
    const headers = { 'Content-Type': 'application/json' };
    assert.throws(check(headers, valid.rawBody, valid.secrets), (err) => {
      assert.ok(err instanceof MissingHeader);
      assert.equal(err.httpStatus, 400);
      return true;
    });
  });
});

describe('signing is the same computation as the pipeline', () => {
  for (const v of vectors.filter((x) => x.event_type)) {
    test(v.name, () => {
      const [secret] = v.secrets;
      const h = v.headers;
      assert.equal(velourcitySignature(v.rawBody, secret), h['X-Velourcity-Signature']);
      assert.equal(
        standardSignature(v.rawBody, secret, h['webhook-id'], Number(h['webhook-timestamp'])),
        h['webhook-signature'],
      );
    });
  }
});

describe('misuse fails loudly', () => {
  const v = vectors[0];

  test('a parsed or re-encoded body is refused', () => {
    assert.throws(() => verify(v.headers, v.body, v.secrets, { now }), TypeError);
  });

  test('an unusable secret is a setup error that does not echo the secret', () => {
    for (const bad of ['whsec_not*base64', 'whsec_', []]) {
      assert.throws(() => checkSecrets(bad), (err) => !err.message.includes('not*base64'));
    }
  });
});
