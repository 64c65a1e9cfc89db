// The test vectors: requests signed by the pipeline's own Python code (examples/make_vectors.py),
// with the outcome the Python SDK gives each; some signed by the Standard Webhooks library.
'use strict';

const { readFileSync } = require('node:fs');

const file = process.env.VELOURCITY_VECTORS;
if (!file) {
  throw new Error(
    'VELOURCITY_VECTORS is not set. These tests check requests signed by the pipeline itself:\n' +
      '  (cd ../.. && .venv/bin/python examples/make_vectors.py --out /tmp/vectors.json)\n' +
      '  VELOURCITY_VECTORS=/tmp/vectors.json npm test\n' +
      '(or run .venv/bin/pytest tests/sdk from the repository root, which does both).',
  );
}
const data = JSON.parse(readFileSync(file, 'utf8'));
const vectors = data.vectors.map((v) => ({ ...v, rawBody: Buffer.from(v.body_b64, 'base64') }));
if (vectors.length === 0) throw new Error(`${file} holds no vectors`);

module.exports = { now: data.now, tolerance: data.tolerance, vectors };
