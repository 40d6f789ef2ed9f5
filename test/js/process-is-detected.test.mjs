// Promise (DESIGN.md, "Who joins, and how"): detectProcess() says where code runs ('node' in
// plain Node.js, 'worker' in a worker thread), and a bus with role 'auto' joins the right way: in
// plain Node.js with no endpoint it refuses with a NoEndpointError that says how to connect; a
// worker thread finds its process's hub by itself.
//
// Roles: 'main' (the test process) and 'worker' (a worker thread). Synchronised by worker messages.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parentPort } from 'node:worker_threads';
import { EventBus, NoEndpointError, detectProcess } from '../../dist/esm/index.js';
import { currentRole, deadline, exitCode, startWorker } from './support.mjs';

const thisFile = fileURLToPath(import.meta.url);
const role = currentRole();

/** Runs a worker that answers with one message, and checks it exits cleanly. */
async function askWorker(data) {
  const worker = startWorker(thisFile, 'worker', data);
  const reply = new Promise((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  const answer = await deadline(10_000, 'worker reply', reply);
  assert.equal(await deadline(5_000, 'worker exit', exitCode(worker)), 0, 'the worker exits by itself');
  return answer;
}

function describeError(err) {
  return { isNoEndpointError: err instanceof NoEndpointError, name: err.name, code: err.code, message: err.message };
}

async function runWorker() {
  const answer = { kind: detectProcess() };
  try {
    const bus = new EventBus({ name: 'worker' });
    answer.role = bus.role;
    await bus.ready();
    answer.sum = await bus.invoke('detect:add', { a: 1, b: 2 });
    await bus.close();
  } catch (err) {
    answer.error = describeError(err);
  }
  parentPort.postMessage(answer);
}

function checkHowToConnect(message) {
  assert.match(message, /role: 'hub'/, 'says how to be the hub');
  assert.match(message, /childEnv\(\)/, 'says how a child joins');
  assert.match(message, /endpoint/, 'says how to pass an endpoint');
}

function runMain() {
  // The test process must look like plain Node.js with nothing to join.
  delete process.env.SWITCHBOARD_ENDPOINT;
  delete process.env.SWITCHBOARD_TOKEN;

  describe('the process is detected and joins the right way', { timeout: 30_000 }, () => {
    it('detectProcess() is \'node\' in plain Node.js', { timeout: 5_000 }, () => {
      assert.equal(detectProcess(), 'node');
    });

    it('a bus with role \'auto\' and no endpoint throws NoEndpointError that says how to connect', { timeout: 5_000 }, () => {
      for (const options of [undefined, {}, { role: 'auto' }]) {
        assert.throws(() => new EventBus(options), (err) => {
          assert.ok(err instanceof NoEndpointError, `a NoEndpointError, got ${err?.name}`);
          assert.equal(err.name, 'NoEndpointError');
          assert.equal(err.code, 'E_NO_ENDPOINT');
          checkHowToConnect(err.message);
          return true;
        });
      }
    });

    it('role \'client\' without an endpoint throws NoEndpointError too', { timeout: 5_000 }, () => {
      assert.throws(() => new EventBus({ role: 'client' }), (err) => {
        assert.ok(err instanceof NoEndpointError, `a NoEndpointError, got ${err?.name}`);
        assert.match(err.message, /endpoint/);
        return true;
      });
    });

    it('a worker in a process without a hub: detectProcess() is \'worker\', and the bus says how to connect', { timeout: 15_000 }, async () => {
      const answer = await askWorker({});
      assert.equal(answer.kind, 'worker');
      assert.ok(answer.error, `expected an error, got ${JSON.stringify(answer)}`);
      assert.equal(answer.error.isNoEndpointError, true);
      assert.equal(answer.error.code, 'E_NO_ENDPOINT');
      checkHowToConnect(answer.error.message);
    });

    it('a worker in the hub\'s process finds the hub by itself', { timeout: 15_000 }, async () => {
      const bus = new EventBus({ role: 'hub', name: 'hub' });
      assert.equal(bus.role, 'hub');
      await bus.ready();
      bus.handle('detect:add', ({ a, b }) => a + b);
      const answer = await askWorker({});
      assert.deepEqual(answer, { kind: 'worker', role: 'client', sum: 3 });
      await bus.close();
      assert.equal(bus.stats().invokes.pending, 0);
      assert.equal(bus.stats().invokes.serving, 0);
    });
  });
}

if (role === 'main') runMain();
else await runWorker();
