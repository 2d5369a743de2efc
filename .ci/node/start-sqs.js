// Starts local-aws-sqs (the SQS JSON protocol of current AWS SDKs) on
// 127.0.0.1:PORT; used by ../services.sh.
//
// local-aws-sqs 2.0.2 differs from SQS in four ways that the queue contract
// (hermestest.QueueSuite) notices; this launcher loads it with these
// corrections, each checked to apply exactly once (the version is pinned):
//   1. A long poll returned only when it had MaxNumberOfMessages messages or
//      its wait ended; SQS returns as soon as it has any.
//   2. ChangeMessageVisibility counted as a receive (ApproximateReceiveCount
//      went up, and a message could move to the dead-letter queue for it).
//   3. ApproximateNumberOfMessages counted in-flight messages too; in SQS it
//      is the visible ones (ApproximateNumberOfMessagesNotVisible counts the
//      others).
//   4. PurgeQueue deleted the messages only after 60 s (SQS: "may take up to
//      60 seconds", in practice a few); it now deletes them at once, and
//      still refuses another purge of the queue for 60 s as SQS does.
const fs = require("fs");
const path = require("path");
const Module = require("module");

const file = require.resolve("local-aws-sqs");
let src = fs.readFileSync(file, "utf8");
const fixes = [
  ["if(r.length==e){clearInterval(c),clearTimeout(n),o();break}}},10)",
   "if(r.length==e)break}r.length&&(clearInterval(c),clearTimeout(n),o())},10)"],
  ["let n=Number(t.record.attributes.ApproximateReceiveCount)+1;",
   "let n=Number(t.record.attributes.ApproximateReceiveCount)+(i?0:1);"],
  ["ApproximateNumberOfMessages:String(S(this,E).filter(o=>!o.delayed).length)",
   "ApproximateNumberOfMessages:String(S(this,E).filter(o=>!o.delayed&&o.visible).length)"],
  ["setTimeout(()=>{this.clearRecords(),t==null||t(),this.purgeInProgress=!1},60*1e3).unref()",
   "(this.clearRecords(),t==null||t(),setTimeout(()=>{this.purgeInProgress=!1},60*1e3).unref())"],
];
for (const [from, to] of fixes) {
  const n = src.split(from).length - 1;
  if (n !== 1) {
    console.error(`start-sqs.js: the local-aws-sqs correction for ${JSON.stringify(from)} matches ${n} times, want 1 (another version?)`);
    process.exit(1);
  }
  src = src.replace(from, () => to);
}
const m = new Module(file, module);
m.filename = file;
m.paths = Module._nodeModulePaths(path.dirname(file));
m._compile(src, file);
const { createSqsServer } = m.exports;

const port = Number(process.argv[2]);
createSqsServer({ port, hostname: "127.0.0.1", emulateQueueCreationLifecycle: false })
  .then(() => console.log(`sqs listening on 127.0.0.1:${port}`))
  .catch((err) => { console.error(err); process.exit(1); });
