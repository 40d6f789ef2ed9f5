// Promise (issue 5, "Fuzzing"): the value decoder at its production limits either decodes a
// payload or refuses it with CodecError E_DECODE, reads nothing outside the payload's view, and
// what it decodes crosses again unchanged: decode(encode(decode(x))) == decode(x). The inputs are
// the fuzz seed corpus and every minimised crash (test/fuzz/corpus/value, test/fuzz/crashes/value),
// then a short seeded run of the fuzzer itself (test/fuzz/value_fuzz.mjs; the long runs are
// test/fuzz/run.sh). Run after `npm run build:ts`.
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { checkValue, fuzz, readInputs } from '../fuzz/value_fuzz.mjs';

const dir = (d) => fileURLToPath(new URL(`../fuzz/${d}/value`, import.meta.url));
const T = { timeout: 60_000 };

describe('the value fuzz corpus replays', T, () => {
  const corpus = readInputs(dir('corpus'));
  it('the seed corpus is there', () => {
    assert.ok(corpus.length >= 40, `${corpus.length} seed inputs`);
  });
  for (const { name, bytes } of [...corpus, ...readInputs(dir('crashes'))]) {
    it(`${name.split('/test/fuzz/')[1]} keeps every property`, () => {
      assert.ok(['accepted', 'refused'].includes(checkValue(bytes, 5)));
    });
  }
  it('both outcomes are exercised: the corpus has accepted and refused inputs', () => {
    const outcomes = new Set(corpus.map(({ bytes }) => checkValue(bytes)));
    assert.deepEqual([...outcomes].sort(), ['accepted', 'refused']);
  });
});

describe('a short seeded fuzz run breaks no property', T, () => {
  for (const seed of [1, 2]) {
    it(`seed ${seed}: 3000 inputs`, () => {
      const res = fuzz({ runs: 3000, seed, corpusDirs: [dir('corpus'), dir('crashes')] });
      assert.equal(res.crash, undefined, res.crash && `${res.crash.message} (hex ${res.crash.hex})`);
      assert.equal(res.execs, 3000);
      assert.ok(res.accepted > 100, `${res.accepted} inputs decoded: the mutations are not all noise`);
    });
  }
});
