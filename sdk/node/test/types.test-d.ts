// Compiled (not run) by tsc when it is available: the hand-written declarations type real usage.
import type { Request, Response } from 'express';
import express from 'express';
import { InvalidSignature, type VerifiedWebhook, verify, webhookMiddleware, WebhookVerificationError } from '@velourcity/webhooks';

const event = verify({ 'webhook-id': 'x' }, Buffer.from('{}'), ['whsec_a', 'whsec_b'], { tolerance: 60 });
const id: string = event.id;
const status: 400 | 401 = new InvalidSignature('x').httpStatus;
const app = express();
app.post('/webhooks', webhookMiddleware('whsec_a', { onRejected: (e: WebhookVerificationError) => e.message }), (req: Request, res: Response) => {
  const hook: VerifiedWebhook | undefined = req.webhook;
  res.json({ id: hook?.event.id, status, first: id });
});
