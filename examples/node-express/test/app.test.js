// The Express app against requests signed by the pipeline: status codes, 200 before the work,
// each webhook-id processed once.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { describe, test } from 'node:test';
import { createApp } from '../src/app.js';
import { now, tolerance, vectors } from '../support/vectors.js';

const quiet = { warn() {}, error() {} };

function makeApp(secrets, onEvent, logger = quiet) {
  return createApp({ secrets, onEvent, tolerance, now: () => now, logger });
}

// A real HTTP request over a socket, with the exact bytes. (supertest would JSON-encode a
// Buffer sent as application/json, which is exactly the mistake these tests must not make.)
async function post(app, v, headers = v.headers) {
  const server = app.listen(0, '127.0.0.1');
  await once(server, 'listening');
  try {
    const res = await fetch(`http://127.0.0.1:${server.address().port}/webhooks`, {
      method: 'POST',
      headers,
      body: v.rawBody,
    });
    return { status: res.status, body: await res.json() };
  } finally {
    server.close();
    server.closeAllConnections(); // keep-alive sockets would hold the test process open
  }
}

describe('each vector gets the status the SDK prescribes', () => {
  for (const v of vectors) {
    test(v.name, async () => {
      const processed = [];
      const app = makeApp(v.secrets, (event) => processed.push(event));
      const res = await post(app, v);
      assert.equal(res.status, v.expect.status, JSON.stringify(res.body));
      await app.locals.queue.idle();
      if (v.expect.status === 200) {
        assert.deepEqual(res.body, { received: true });
        assert.deepEqual(processed.map((e) => e.id), [v.expect.event_id]);
        assert.deepEqual(processed[0], JSON.parse(v.rawBody.toString('utf8')));
      } else {
        assert.equal(typeof res.body.error, 'string');
        assert.deepEqual(processed, [], 'a rejected webhook must not be processed');
      }
    });
  }
});

describe('behaviour', () => {
  const valid = vectors.find((v) => v.name === 'order.created');

  test('answers 200 before the work is done', async () => {
    let finish;
    const started = [];
    const app = makeApp(valid.secrets, (event) => {
      started.push(event.id);
      return new Promise((resolve) => { finish = resolve; }); // work that is still running
    });
    const res = await post(app, valid);
    assert.equal(res.status, 200);
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(started, [valid.expect.event_id]);
    finish();
    await app.locals.queue.idle();
  });

  test('a retry of the same delivery (same webhook-id) is acknowledged but processed once', async () => {
    const [first, retry] = vectors.filter((v) => v.dedupe_group === 'retry');
    assert.equal(first.headers['webhook-id'], retry.headers['webhook-id']);
    assert.notEqual(first.headers['webhook-timestamp'], retry.headers['webhook-timestamp']);
    const processed = [];
    const app = makeApp(first.secrets, (event) => processed.push(event.id));
    assert.deepEqual((await post(app, first)).body, { received: true });
    assert.deepEqual((await post(app, retry)).body, { received: true, duplicate: true });
    await app.locals.queue.idle();
    assert.deepEqual(processed, [first.expect.event_id]);
  });

  test('work that failed is done again when the webhook comes again', async () => {
    const errors = [];
    let calls = 0;
    const app = makeApp(valid.secrets, () => {
      calls += 1;
      if (calls === 1) throw new Error('database down');
    }, { warn() {}, error: (...args) => errors.push(args) });
    await post(app, valid);
    await app.locals.queue.idle();
    await post(app, valid);
    await app.locals.queue.idle();
    assert.equal(calls, 2);
    assert.equal(errors.length, 1);
  });

  test('events are processed one at a time, in arrival order', async () => {
    const order = [];
    const app = makeApp(vectors[0].secrets, async (event) => {
      order.push(`start ${event.type}`);
      await new Promise((resolve) => setTimeout(resolve, 5));
      order.push(`end ${event.type}`);
    });
    const six = vectors.filter((v) => v.event_type);
    for (const v of six) assert.equal((await post(app, v)).status, 200);
    await app.locals.queue.idle();
    assert.deepEqual(order, six.flatMap((v) => [`start ${v.event_type}`, `end ${v.event_type}`]));
  });

  test('a body that is not application/json is refused with 400', async () => {
    const app = makeApp(valid.secrets, () => assert.fail('must not be processed'));
    const res = await post(app, valid, { ...valid.headers, 'Content-Type': 'text/plain' });
    assert.equal(res.status, 400);
  });

  test('rejections are logged with the reason and never the secret', async () => {
    const warnings = [];
    const v = vectors.find((x) => x.name === 'wrong secret');
    const app = makeApp(v.secrets, () => {}, { warn: (m) => warnings.push(m), error() {} });
    const res = await post(app, v);
    assert.equal(res.status, 401);
    assert.match(warnings.join('\n'), /X-Velourcity-Signature does not match/);
    for (const secret of v.secrets) {
      assert.ok(!warnings.join('\n').includes(secret));
      assert.ok(!JSON.stringify(res.body).includes(secret));
    }
  });

  test('a bad secret fails at start-up', () => {
    assert.throws(() => createApp({ secrets: 'whsec_%%%', onEvent() {} }));
    assert.throws(() => createApp({ secrets: [], onEvent() {} }));
  });
});
