// @velourcity/webhooks: verify Velourcity webhooks in Node.js. No dependencies.
//
// The same checks as the Python SDK (velourcity_webhooks.verify), tested against requests signed
// by the pipeline's own code:
//
//   X-Velourcity-Signature: sha256=<hex>   HMAC-SHA256 of the raw body, keyed with the whole
//                                          secret string ("whsec_..." included, UTF-8)
//   webhook-id / webhook-timestamp /       Standard Webhooks: HMAC-SHA256 of
//   webhook-signature: v1,<base64> ...     `${id}.${timestamp}.${body}`, keyed with the
//                                          base64-decoded part of the secret after "whsec_"
//
// Only the Standard Webhooks scheme signs a timestamp, so only it stops replays: when its
// headers are present all three must be there, match, and carry a timestamp within `tolerance`
// seconds of now. During a secret rotation `webhook-signature` holds one signature per active
// secret while X-Velourcity-Signature uses the newest secret only; so when it holds several,
// the Standard Webhooks check alone decides (a receiver still on the old secret keeps working).
//
// This file is the CommonJS build; index.mjs re-exports it for ESM, index.d.cts types it.

'use strict';

const { createHmac, timingSafeEqual } = require('node:crypto');

const VELOURCITY_HEADER = 'x-velourcity-signature';
const STANDARD_HEADERS = ['webhook-id', 'webhook-timestamp', 'webhook-signature'];
const KEY_PREFIX = 'whsec_';
// Unix seconds have 10 digits until 2286; anything far longer is garbage.
const MAX_TIMESTAMP_DIGITS = 12;
// Strict base64 (standard alphabet, correct padding), like Python's b64decode(validate=True):
// Buffer.from(s, 'base64') silently skips bad characters, which would accept garbage.
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** A webhook to reject; `httpStatus` is what to answer (400 not a webhook, 401 not authentic). */
class WebhookVerificationError extends Error {
  constructor(message) {
    super(message);
    this.name = this.constructor.name;
  }

  get httpStatus() {
    return 400;
  }
}

/** A header the check needs is absent (no signature at all, or an incomplete set). */
class MissingHeader extends WebhookVerificationError {}

/** No signature matches with any secret (wrong secret, modified body), or a header is unreadable. */
class InvalidSignature extends WebhookVerificationError {
  get httpStatus() {
    return 401;
  }
}

/** webhook-timestamp is too far from now: possibly a replay. */
class StaleTimestamp extends WebhookVerificationError {
  get httpStatus() {
    return 401;
  }
}

/** Authentic, but the body is not a JSON object. */
class MalformedBody extends WebhookVerificationError {}

function strictBase64(text) {
  return BASE64.test(text) ? Buffer.from(text, 'base64') : null;
}

/** The Standard Webhooks key: the base64 after "whsec_" (missing '=' padding tolerated). */
function signingKey(secret) {
  const encoded = secret.startsWith(KEY_PREFIX) ? secret.slice(KEY_PREFIX.length) : secret;
  const key = strictBase64(encoded + '='.repeat((4 - (encoded.length % 4)) % 4));
  if (key === null) throw new Error("a webhook secret must be 'whsec_' followed by base64");
  if (key.length === 0) throw new Error('a webhook secret may not be empty');
  return key;
}

/**
 * The secrets as an array, each checked usable; throws (never echoing a secret) otherwise.
 * Call it at start-up so a misconfigured secret fails there, not as a 500 on the first webhook.
 */
function checkSecrets(secretOrSecrets) {
  const secrets = typeof secretOrSecrets === 'string' ? [secretOrSecrets] : [...secretOrSecrets];
  if (secrets.length === 0) throw new Error('at least one webhook secret is needed');
  for (const secret of secrets) {
    if (typeof secret !== 'string') throw new TypeError('webhook secrets must be strings');
    signingKey(secret);
  }
  return secrets;
}

/** `sha256=<hex>`: HMAC-SHA256 of the raw body keyed with the whole secret string. */
function velourcitySignature(rawBody, secret) {
  return `sha256=${createHmac('sha256', secret).update(rawBody).digest('hex')}`;
}

/** `v1,<base64>`: the Standard Webhooks signature of `${id}.${timestamp}.${body}`. */
function standardSignature(rawBody, secret, webhookId, timestamp) {
  const digest = createHmac('sha256', signingKey(secret))
    .update(`${webhookId}.${timestamp}.`)
    .update(rawBody)
    .digest();
  return `v1,${digest.toString('base64')}`;
}

// timingSafeEqual throws on different lengths, and a length is not a secret: check it first.
function safeEqual(a, b) {
  return a.length === b.length && timingSafeEqual(a, b);
}

// Compare every pair, so the time taken does not depend on which secret or signature matched.
function anyMatch(expected, given) {
  let matched = false;
  for (const e of expected) for (const g of given) matched = safeEqual(e, g) || matched;
  return matched;
}

function tokens(value) {
  return value.split(/\s+/).filter(Boolean);
}

function checkVelourcity(value, rawBody, secrets) {
  const given = tokens(value).filter((t) => t.startsWith('sha256='));
  if (given.length === 0) {
    throw new InvalidSignature("X-Velourcity-Signature holds no 'sha256=<hex>' signature");
  }
  const expected = secrets.map((s) => Buffer.from(velourcitySignature(rawBody, s)));
  if (!anyMatch(expected, given.map((g) => Buffer.from(g)))) {
    throw new InvalidSignature(
      `X-Velourcity-Signature does not match the body with any of the ${secrets.length} ` +
        'secret(s) (wrong secret or modified body?)',
    );
  }
}

function checkStandard(headers, rawBody, secrets, tolerance, now) {
  const missing = STANDARD_HEADERS.filter((name) => !headers[name]);
  if (missing.length > 0) {
    throw new MissingHeader(`incomplete Standard Webhooks headers: missing ${missing.join(', ')}`);
  }
  const [webhookId, rawTimestamp, value] = STANDARD_HEADERS.map((name) => headers[name]);
  if (!/^[0-9]+$/.test(rawTimestamp) || rawTimestamp.length > MAX_TIMESTAMP_DIGITS) {
    throw new InvalidSignature(
      `webhook-timestamp must be integer unix seconds: ${JSON.stringify(rawTimestamp.slice(0, 40))}`,
    );
  }
  // Signed as a number, as the SDK does: "01795845396" signs as "1795845396".
  const timestamp = Number(rawTimestamp);
  const given = [];
  for (const token of tokens(value)) {
    const comma = token.indexOf(',');
    const version = comma === -1 ? token : token.slice(0, comma);
    const decoded = comma === -1 ? Buffer.alloc(0) : strictBase64(token.slice(comma + 1));
    // Unknown versions and unreadable signatures are skipped, not fatal: another may match.
    if (version === 'v1' && decoded !== null) given.push(decoded);
  }
  if (given.length === 0) {
    throw new InvalidSignature("webhook-signature holds no readable 'v1,<base64>' signature");
  }
  const expected = secrets.map((s) =>
    Buffer.from(standardSignature(rawBody, s, webhookId, timestamp).slice(3), 'base64'),
  );
  if (!anyMatch(expected, given)) {
    throw new InvalidSignature(
      `webhook-signature does not match id, timestamp and body with any of the ${secrets.length} ` +
        'secret(s) (wrong secret or modified body?)',
    );
  }
  // Checked after the signature: an unauthenticated request learns nothing about our clock.
  const skew = now - timestamp;
  if (Math.abs(skew) > tolerance) {
    const when = skew > 0 ? `${Math.round(skew)}s in the past` : `${Math.round(-skew)}s in the future`;
    throw new StaleTimestamp(
      `webhook-timestamp ${timestamp} is ${when}; accepted: within ${tolerance}s of now`,
    );
  }
}

/**
 * Lower-case header names; a header given several times (an array) is joined with spaces, so
 * rotation signatures split across repeated headers still count, as in the SDK.
 */
function normalizeHeaders(headers) {
  const lowered = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    const key = name.toLowerCase();
    const text = Array.isArray(value) ? value.join(' ') : String(value);
    lowered[key] = key in lowered ? `${lowered[key]} ${text}` : text;
  }
  return lowered;
}

/**
 * Check a webhook's signatures and return its parsed JSON event.
 *
 * @param {Record<string, string | string[]>} headers  any case
 * @param {Buffer} rawBody  the bytes as received: never JSON.stringify(req.body), which may
 *   differ from what was signed
 * @param {string | string[]} secrets  several during a rotation: any may match
 * @param {{tolerance?: number, now?: number}} options  seconds; `now` defaults to the clock
 * @throws {WebhookVerificationError} MissingHeader, InvalidSignature, StaleTimestamp, MalformedBody
 */
function verify(headers, rawBody, secrets, { tolerance = 300, now } = {}) {
  if (!Buffer.isBuffer(rawBody)) {
    throw new TypeError('rawBody must be the body bytes as received (a Buffer): use express.raw()');
  }
  const usable = checkSecrets(secrets);
  const lowered = normalizeHeaders(headers);
  const velourcity = lowered[VELOURCITY_HEADER];
  const standard = STANDARD_HEADERS.some((name) => name in lowered);
  if (velourcity === undefined && !standard) {
    throw new MissingHeader('no signature header: expected X-Velourcity-Signature and/or webhook-signature');
  }
  const rotating = standard && tokens(lowered['webhook-signature'] ?? '').length > 1;
  if (velourcity !== undefined && !rotating) checkVelourcity(velourcity, rawBody, usable);
  if (standard) {
    checkStandard(lowered, rawBody, usable, tolerance, now ?? Date.now() / 1000);
  }
  let event;
  try {
    // fatal: invalid UTF-8 is an error, not silently replaced characters.
    event = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(rawBody));
  } catch (err) {
    throw new MalformedBody(`the body is not valid UTF-8 JSON: ${err.message}`);
  }
  if (event === null || typeof event !== 'object' || Array.isArray(event)) {
    throw new MalformedBody('the body is JSON but not an object');
  }
  return event;
}

const DEFAULT_LIMIT = 1024 * 1024;

function readBody(req, limit) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > limit) {
        const err = new Error(`the body is larger than ${limit} bytes`);
        err.status = 413;
        req.removeAllListeners('data');
        req.resume(); // drain the rest, so the 413 can be sent
        reject(err);
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function sendJson(res, status, payload) {
  if (typeof res.status === 'function' && typeof res.json === 'function') {
    res.status(status).json(payload); // Express
    return;
  }
  res.statusCode = status;
  res.setHeader('Content-Type', 'application/json');
  res.end(JSON.stringify(payload));
}

/**
 * Middleware (Express, or plain node:http with a `next`) that reads the raw body itself,
 * verifies it, and sets `req.webhook = { event, webhookId, eventType, attempt, deliveryId,
 * rawBody }`. A rejected request never reaches the next handler: it gets `httpStatus` with
 * `{ error: '<ErrorClass>', message: '<why>' }` (the message names headers, never a secret).
 *
 * Mount it on the webhook route only, before any body parser (`express.json()` would consume
 * the bytes the signature covers); a body already read by `express.raw()` is used as is.
 */
function webhookMiddleware(secretOrSecrets, options = {}) {
  const { tolerance = 300, now, limit = DEFAULT_LIMIT, onRejected } = options;
  const fixed = typeof secretOrSecrets === 'function' ? null : checkSecrets(secretOrSecrets);
  return function velourcityWebhook(req, res, next) {
    let raw;
    if (Buffer.isBuffer(req.body)) {
      raw = Promise.resolve(req.body);
    } else if (req.body !== undefined || req.readableEnded) {
      next(
        new Error(
          'the request body was already parsed: mount the Velourcity webhook middleware before ' +
            'express.json() (or use express.raw() on this route)',
        ),
      );
      return;
    } else {
      raw = readBody(req, limit);
    }
    raw.then(
      (rawBody) => {
        let event;
        try {
          const secrets = fixed ?? secretOrSecrets();
          const clock = typeof now === 'function' ? now() : now;
          event = verify(req.headersDistinct ?? req.headers, rawBody, secrets, { tolerance, now: clock });
        } catch (err) {
          if (!(err instanceof WebhookVerificationError)) {
            next(err);
            return;
          }
          if (onRejected) onRejected(err, req);
          sendJson(res, err.httpStatus, { error: err.name, message: err.message });
          return;
        }
        const header = (name) => {
          const value = req.headers[name];
          return Array.isArray(value) ? value[0] : value;
        };
        req.webhook = {
          event,
          webhookId: header('webhook-id') ?? event.id,
          eventType: header('x-velourcity-event') ?? event.type,
          attempt: Number(header('x-velourcity-delivery-attempt') ?? 1),
          deliveryId: header('x-velourcity-delivery-id'),
          rawBody,
        };
        next();
      },
      (err) => {
        if (err.status === 413) {
          sendJson(res, 413, { error: 'PayloadTooLarge', message: err.message });
          return;
        }
        next(err);
      },
    );
  };
}

module.exports = {
  WebhookVerificationError,
  MissingHeader,
  InvalidSignature,
  StaleTimestamp,
  MalformedBody,
  checkSecrets,
  velourcitySignature,
  standardSignature,
  normalizeHeaders,
  verify,
  webhookMiddleware,
};
