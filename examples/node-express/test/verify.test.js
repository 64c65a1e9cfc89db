// verify() against requests signed by the pipeline: the same outcome as the Python SDK for each.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { checkSecrets, standardSignature, velourcitySignature, verify } from '../src/verify.js';
import { now, tolerance, vectors } from '../support/vectors.js';

function outcome(headers, rawBody, secrets) {
  try {
    const event = verify(headers, rawBody, secrets, { tolerance, now });
    return { status: 200, error: null, event_id: event.id };
  } catch (err) {
    if (err.httpStatus === undefined) throw err; // not a verification error: a bug
    return { status: err.httpStatus, error: err.name, event_id: null };
  }
}

describe('verify() matches pipeline.receiver.verify()', () => {
  for (const v of vectors) {
    test(v.name, () => {
      assert.deepEqual(outcome(v.headers, v.rawBody, v.secrets), v.expect);
    });
  }

  test('the vectors cover all six event types', () => {
    const types = new Set(vectors.filter((v) => v.event_type).map((v) => v.event_type));
    assert.deepEqual([...types].sort(), [
      'order.cancelled', 'order.created', 'order.delivered', 'order.driver_assigned',
      'order.picked_up', 'payment.completed',
    ]);
  });

  test('header names are case-insensitive', () => {
    for (const v of vectors) {
      const upper = Object.fromEntries(Object.entries(v.headers).map(([k, val]) => [k.toUpperCase(), val]));
      assert.deepEqual(outcome(upper, v.rawBody, v.secrets), v.expect, v.name);
    }
  });

  test('rotation signatures in repeated headers still verify', () => {
    const v = vectors.find((x) => x.name === 'rotation, receiver still has the old secret');
    const headers = { ...v.headers, 'webhook-signature': v.headers['webhook-signature'].split(' ') };
    assert.equal(outcome(headers, v.rawBody, v.secrets).status, 200);
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
      assert.throws(() => checkSecrets(bad), (err) => {
        assert.ok(!(err.message.includes('not*base64')));
        return true;
      });
    }
  });
});
