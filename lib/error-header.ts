// The first line Node.js's util.inspect shows for an error, which is not always its `stack`'s:
// for `class QuotaError extends Error {}` the stack starts "Error: over quota" (the inherited
// name), and inspect shows "QuotaError: over quota". A decoded error is a plain Error, whose
// constructor no longer says what the sender's was, so the codec and RemoteError put the
// sender's class into the stack's first line themselves, by Node.js's own rule (improveStack in
// lib/internal/util/inspect.js): the class replaces a name ending in "Error" that it contains
// ("QuotaError"), else goes in front of it ("Quota [Error]", "DOMException [AbortError]"). A
// name that does not end in "Error", or a stack that does not start with the name, is shown
// as it is. No Node.js import: the page build uses this too.

/** `stack` with its start as util.inspect shows an error of class `cls` named `name`. */
export function withClassHeader(stack: string, cls: string, name: string): string {
  const len = name.length;
  if (cls === '' || cls === name || !name.endsWith('Error') || !stack.startsWith(name)) return stack;
  if (stack.length !== len && stack[len] !== ':' && stack[len] !== '\n') return stack;
  const rest = stack.slice(len);
  return cls.includes(name) ? cls + rest : `${cls} [${name}]${rest}`;
}
