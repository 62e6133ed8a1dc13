// Verifies webhook messages as a JavaScript receiver would, with the `standardwebhooks`
// library: reads {"secret", "messages": [{"headers", "body"}]} as JSON on stdin and prints,
// for each message, its parsed `type`, or "refused: <reason>".
import { Webhook } from "standardwebhooks";

let input = "";
for await (const chunk of process.stdin) input += chunk;
const { secret, messages } = JSON.parse(input);
const hook = new Webhook(secret);
const results = messages.map(({ headers, body }) => {
  try {
    return hook.verify(body, headers).type;
  } catch (err) {
    return `refused: ${err.message}`;
  }
});
console.log(JSON.stringify(results));
