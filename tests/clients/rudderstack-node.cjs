// Sends the calls given as JSON on the command line with RudderStack's Node SDK on its
// defaults (gzip on), then flushes; exits non-zero if the SDK reports an error.
// Usage: node rudderstack-node.cjs '{"dataPlaneUrl": ..., "writeKey": ..., "calls": [[method, message], ...]}'
const Analytics = require("@rudderstack/rudder-sdk-node");

const spec = JSON.parse(process.argv[2]);
const errors = [];
const client = new Analytics(spec.writeKey, {
  dataPlaneUrl: spec.dataPlaneUrl,
  errorHandler: (error) => errors.push(String(error)),
});

(async () => {
  for (const [method, message] of spec.calls) client[method](message);
  await client.flush();
  if (errors.length) {
    console.error(errors.join("\n"));
    process.exit(1);
  }
  console.log("sent", spec.calls.length);
})();
