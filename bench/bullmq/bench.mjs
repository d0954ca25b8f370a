// The BullMQ baseline of `make bench`: one JSON line per result on stdout.
//   node bench.mjs worker  REDIS_PORT QUEUE COUNT CONCURRENCY
//   node bench.mjs produce REDIS_PORT QUEUE COUNT BATCH
import { Queue, Worker } from "bullmq";

const [mode, port, name, countArg, option] = process.argv.slice(2);
const connection = { host: "127.0.0.1", port: Number(port) };
const count = Number(countArg);

if (mode === "worker") {
  let done = 0;
  const worker = new Worker(name, async () => {}, {
    connection,
    concurrency: Number(option),
  });
  worker.on("completed", () => {
    done += 1;
    if (done === count) {
      console.log(JSON.stringify({ finished_ms: Date.now() }));
      worker.close().then(() => process.exit(0));
    }
  });
  await worker.waitUntilReady();
  console.log(JSON.stringify({ ready: true }));
} else if (mode === "produce") {
  const batch = Number(option);
  const queue = new Queue(name, { connection });
  await queue.waitUntilReady();
  const jobs = Array.from({ length: count }, (_, seq) => ({ name: "noop", data: { seq } }));
  const started = Date.now();
  for (let i = 0; i < count; i += batch) {
    await queue.addBulk(jobs.slice(i, i + batch));
  }
  console.log(JSON.stringify({ started_ms: started, enqueued_ms: Date.now() }));
  await queue.close();
} else {
  console.error(`unknown mode ${mode}`);
  process.exit(2);
}
