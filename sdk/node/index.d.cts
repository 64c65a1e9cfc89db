// Types of @velourcity/webhooks (written by hand; the package has no build step).
/// <reference types="node" />
import type { IncomingMessage, ServerResponse } from 'node:http';

/** Header values as Node gives them: any case, repeated headers as arrays. */
export type Headers = Record<string, string | string[] | undefined>;
export type Secrets = string | readonly string[];

/** A Velourcity webhook as POSTed: `{ id, type, created_at, account_id, data }`. */
export interface WebhookEvent {
  id: string;
  type: string;
  created_at: string;
  account_id: string;
  data: Record<string, unknown>;
  [key: string]: unknown;
}

export interface VerifyOptions {
  /** Seconds webhook-timestamp may be off from `now` (default 300). */
  tolerance?: number;
  /** Unix seconds to verify at (default: the clock). */
  now?: number;
}

/** A webhook to reject; `httpStatus` is what to answer (400 not a webhook, 401 not authentic). */
export declare class WebhookVerificationError extends Error {
  readonly httpStatus: 400 | 401;
}
/** 400: no signature header, or an incomplete Standard Webhooks set. */
export declare class MissingHeader extends WebhookVerificationError {
  readonly httpStatus: 400;
}
/** 401: no signature matches with any secret (wrong secret, tampered body), or unreadable. */
export declare class InvalidSignature extends WebhookVerificationError {
  readonly httpStatus: 401;
}
/** 401: webhook-timestamp too far from now (a replay?). */
export declare class StaleTimestamp extends WebhookVerificationError {
  readonly httpStatus: 401;
}
/** 400: authentic, but the body is not a JSON object. */
export declare class MalformedBody extends WebhookVerificationError {
  readonly httpStatus: 400;
}

/**
 * Check a webhook's signatures and return its parsed event.
 * @param rawBody the bytes as received (never `JSON.stringify(req.body)`)
 * @param secretOrSecrets several during a rotation: any may match
 * @throws {WebhookVerificationError} MissingHeader, InvalidSignature, StaleTimestamp, MalformedBody
 * @throws {TypeError} rawBody is not a Buffer; {Error} an unusable secret
 */
export declare function verify(
  headers: Headers,
  rawBody: Buffer,
  secretOrSecrets: Secrets,
  options?: VerifyOptions,
): WebhookEvent;

/** The secrets as an array, each checked usable; throws (never echoing a secret) otherwise. */
export declare function checkSecrets(secretOrSecrets: Secrets): string[];
/** `sha256=<hex>`: HMAC-SHA256 of the raw body keyed with the whole secret string. */
export declare function velourcitySignature(rawBody: Buffer | string, secret: string): string;
/** `v1,<base64>`: the Standard Webhooks signature of `${id}.${timestamp}.${body}`. */
export declare function standardSignature(
  rawBody: Buffer | string,
  secret: string,
  webhookId: string,
  timestamp: number,
): string;
/** Lower-case names; repeated headers joined with spaces. */
export declare function normalizeHeaders(headers: Headers): Record<string, string>;

/** What the middleware puts on `req.webhook`. */
export interface VerifiedWebhook {
  event: WebhookEvent;
  /** webhook-id: the same on every retry of a delivery (dedupe on it). */
  webhookId: string;
  eventType: string;
  attempt: number;
  deliveryId: string | undefined;
  rawBody: Buffer;
}

export interface MiddlewareOptions {
  tolerance?: number;
  /** Unix seconds, or a function returning them (default: the clock). */
  now?: number | (() => number);
  /** Largest body read, in bytes (default 1 MiB); larger gets 413. */
  limit?: number;
  /** Called with each rejection before the 400/401 is sent (to log it). */
  onRejected?: (error: WebhookVerificationError, req: IncomingMessage) => void;
}

export type WebhookRequest = IncomingMessage & { body?: unknown; webhook?: VerifiedWebhook };

/**
 * Express (or node:http) middleware: reads the raw body, verifies it, sets `req.webhook`;
 * answers 400/401 `{ error, message }` itself for a rejected request. Secrets may be a function
 * (rotation without a restart).
 */
export declare function webhookMiddleware(
  secretOrSecrets: Secrets | (() => Secrets),
  options?: MiddlewareOptions,
): (req: WebhookRequest, res: ServerResponse, next: (err?: unknown) => void) => void;

declare global {
  namespace Express {
    interface Request {
      /** Set by @velourcity/webhooks' webhookMiddleware. */
      webhook?: import('./index.cjs').VerifiedWebhook;
    }
  }
}
