// Promise (DESIGN.md, "Values that cross": Error ... subclasses' names): an error thrown by a
// handler in another process reaches the caller with its class. A user class that does not set
// `name` (`class QuotaError extends Error {}`) is shown by Node.js as `QuotaError: ...`, and so
// is the caller's RemoteError, in util.inspect and in the first line of its stack; a program
// reads the class in `remoteClass`. The caller never constructs a class that the peer names.
// The same holds for an error inside an event payload, and for a cause.
//
// Roles: 'main' (the hub and the caller) and 'thrower' (a forked process that serves handlers
// throwing each kind of error and reports how util.inspect shows each original).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import util from 'node:util';
import { EventBus, RemoteError } from '../../dist/esm/index.js';
import { closeOnRequest, currentRole, deadline, forkRole, guardAgainstOrphaning, killLeftovers, messageFrom, requestClose } from './support.mjs';

const thisFile = fileURLToPath(import.meta.url);
const role = currentRole();
const firstLine = (text) => text.split('\n', 1)[0];

// Each case: the error a handler throws. Built in the thrower's process.
const CASES = {
  // The example: the class is the only thing that says QuotaError.
  quota: () => {
    class QuotaError extends Error {}
    return Object.assign(new QuotaError('over quota'), { limit: 5 });
  },
  // A class whose name does not end in the inherited name: Node.js shows "Quota [Error]".
  unsuffixed: () => {
    class Quota extends Error {}
    return new Quota('over');
  },
  // A subclass of a built-in that keeps the built-in's name.
  builtinSubclass: () => {
    class BadInput extends TypeError {}
    return new BadInput('not a number');
  },
  // A class that names itself: nothing to add.
  named: () => {
    class ValidationError extends Error {
      constructor(message) {
        super(message);
        this.name = 'ValidationError';
      }
    }
    return new ValidationError('email is invalid');
  },
  // A built-in, rebuilt as itself.
  builtin: () => new RangeError('too far'),
  // A platform class the receiver must not construct.
  domException: () => new DOMException('stopped', 'AbortError'),
  // The class of a cause travels too.
  withCause: () => {
    class StorageError extends Error {}
    return new Error('save failed', { cause: new StorageError('disk full') });
  },
  // An empty message: the first line is the class alone.
  emptyMessage: () => {
    class QuotaError extends Error {}
    return new QuotaError('');
  },
};

// --- Roles ----------------------------------------------------------------------------------------

async function runThrower() {
  guardAgainstOrphaning();
  const bus = new EventBus({ name: 'thrower' });
  const shown = {};
  for (const [name, make] of Object.entries(CASES)) {
    const original = make();
    shown[name] = {
      inspect: firstLine(util.inspect(original)),
      cause: original.cause ? firstLine(util.inspect(original.cause)) : undefined,
      name: original.name,
      cls: original.constructor.name,
    };
    bus.handle(`throw:${name}`, () => {
      throw make();
    });
  }
  bus.handle('emit:quota', () => {
    bus.emit('report:failed', { error: CASES.quota() });
    return null;
  });
  await bus.ready();
  closeOnRequest(bus);
  process.send({ type: 'ready', shown });
}

// --- The tests ----------------------------------------------------------------------------------------

function runMain() {
  let bus;
  let thrower;
  let shown;

  describe('a remote error shows its class', { timeout: 30_000 }, () => {
    before(async () => {
      bus = new EventBus({ role: 'hub', name: 'caller' });
      await bus.ready();
      thrower = forkRole(thisFile, 'thrower', bus.childEnv());
      ({ shown } = await deadline(10_000, 'the thrower to be ready', messageFrom(thrower, (m) => m.type === 'ready')));
    });

    after(async () => {
      if (thrower) await requestClose(thrower).catch(() => {});
      killLeftovers([thrower]);
      await bus?.close();
    });

    /** The RemoteError of invoking `throw:<name>`. */
    async function thrown(name) {
      const err = await bus.invoke(`throw:${name}`).then(() => null, (e) => e);
      assert.ok(err instanceof RemoteError, `a RemoteError, got ${err}`);
      return err;
    }

    it('class QuotaError extends Error {}: inspect and the stack start "QuotaError: over quota"; remoteClass says QuotaError', async () => {
      const err = await thrown('quota');
      assert.equal(shown.quota.inspect, 'QuotaError: over quota', 'what Node.js shows where it was thrown');
      assert.equal(firstLine(err.stack), 'QuotaError: over quota');
      assert.equal(firstLine(util.inspect(err)), 'QuotaError: over quota');
      assert.equal(err.remoteClass, 'QuotaError');
      assert.equal(err.name, 'Error', 'name stays what the sender had');
      assert.equal(err.limit, 5);
      assert.equal(err.message, 'over quota');
      assert.equal(Object.getPrototypeOf(err), RemoteError.prototype, 'never the peer\'s class');
      assert.match(util.inspect(err), /remoteClass: 'QuotaError'/);
      assert.match(err.stack.split('\n')[1], /^ {4}\[remote node 'thrower' pid \d+\] at /);
    });

    for (const name of ['unsuffixed', 'builtinSubclass', 'named', 'builtin', 'domException', 'emptyMessage']) {
      it(`${name}: the caller's first line is what Node.js shows for the original`, async () => {
        const err = await thrown(name);
        assert.equal(firstLine(err.stack), shown[name].inspect, 'stack');
        assert.equal(firstLine(util.inspect(err)), shown[name].inspect, 'util.inspect');
        assert.equal(err.remoteClass, shown[name].cls);
        assert.equal(err.name, shown[name].name);
        assert.equal(Object.getPrototypeOf(err), RemoteError.prototype);
      });
    }

    it('inspect with colors keeps the first line', async () => {
      const err = await thrown('builtin');
      assert.equal(firstLine(util.inspect(err, { colors: true })), 'RangeError: too far');
    });

    it('a cause keeps its class: remoteClass on the decoded cause, and inspect shows it', async () => {
      const err = await thrown('withCause');
      assert.equal(err.remoteClass, 'Error');
      assert.ok(err.cause instanceof Error);
      assert.equal(err.cause.constructor, Error, 'a plain Error, never a class the peer names');
      assert.equal(err.cause.remoteClass, 'StorageError');
      assert.ok(!Object.keys(err.cause).includes('remoteClass'), 'not enumerable, like name');
      assert.equal(firstLine(util.inspect(err.cause)), shown.withCause.cause);
      assert.equal(shown.withCause.cause, 'StorageError: disk full');
    });

    it('an error in an event payload keeps its class the same way', async () => {
      const got = bus.once('report:failed');
      await bus.invoke('emit:quota');
      const { error } = await deadline(5_000, 'the event', got);
      assert.equal(error.constructor, Error);
      assert.equal(error.remoteClass, 'QuotaError');
      assert.equal(error.name, 'Error');
      assert.equal(error.limit, 5);
      assert.equal(firstLine(util.inspect(error)), 'QuotaError: over quota');
    });

    it('forwarding a decoded error keeps its class', async () => {
      const got = bus.once('report:failed');
      await bus.invoke('emit:quota');
      const { error } = await deadline(5_000, 'the event', got);
      // This process serves it on: the error crosses again, as decoded.
      const stop = bus.handle('rethrow', () => {
        throw error;
      });
      try {
        const again = await bus.invoke('rethrow').then(() => null, (e) => e);
        assert.equal(again.remoteClass, 'QuotaError');
        assert.equal(firstLine(again.stack), 'QuotaError: over quota');
      } finally {
        stop();
      }
    });
  });
}

const roles = { main: runMain, thrower: runThrower };
if (!roles[role]) throw new Error(`unknown role ${role}`);
await roles[role]();
