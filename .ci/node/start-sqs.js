// Starts local-aws-sqs (the SQS JSON protocol of current AWS SDKs) on
// 127.0.0.1:PORT; used by ../services.sh.
const { createSqsServer } = require("local-aws-sqs");
const port = Number(process.argv[2]);
createSqsServer({ port, hostname: "127.0.0.1", emulateQueueCreationLifecycle: false })
  .then(() => console.log(`sqs listening on 127.0.0.1:${port}`))
  .catch((err) => { console.error(err); process.exit(1); });
