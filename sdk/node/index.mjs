// ESM entry point of @velourcity/webhooks: the same functions and classes as the CommonJS build
// (one implementation, so `instanceof` works whichever way a module loaded it).
import sdk from './index.cjs';

export const {
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
} = sdk;
export default sdk;
