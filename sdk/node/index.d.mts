// ESM types of @velourcity/webhooks: the same declarations as the CommonJS build.
import * as sdk from './index.cjs';

export * from './index.cjs';
export default sdk;
