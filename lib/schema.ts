// Schemas on handlers and listeners: any Standard Schema validator (zod, valibot, arktype...),
// checked in the receiving process. https://standardschema.dev is the whole interface used: an
// object whose `~standard.validate(value)` returns `{ value }` or `{ issues }`, or a promise of
// either. No validator library is a dependency of this package.
import { InvalidArgumentError, ValidationError, type ValidationIssue } from './errors.js';

export interface StandardSchema {
  readonly '~standard': {
    readonly version: number;
    readonly vendor: string;
    validate(value: unknown): StandardResult | Promise<StandardResult>;
  };
}
type StandardResult =
  | { readonly value: unknown; readonly issues?: undefined }
  | { readonly issues: ReadonlyArray<{ readonly message: string; readonly path?: ReadonlyArray<unknown> }> };

/** Throws InvalidArgumentError unless `schema` is a Standard Schema. */
export function checkSchema(schema: unknown, where: string): asserts schema is StandardSchema {
  const std = (schema as { '~standard'?: { validate?: unknown } } | null)?.['~standard'];
  if (typeof std?.validate !== 'function') {
    throw new InvalidArgumentError(
      `The schema of ${where} is not a Standard Schema (an object with '~standard'.validate, as zod, valibot and arktype make)`,
    );
  }
}

function pathOf(path: ReadonlyArray<unknown> | undefined): string {
  if (!path || path.length === 0) return '';
  return path
    .map((p) => (p !== null && typeof p === 'object' && 'key' in p ? (p as { key: unknown }).key : p))
    .map((k) => (typeof k === 'number' ? `[${k}]` : `.${String(k)}`))
    .join('')
    .replace(/^\./, '');
}

function outcome(result: StandardResult, what: string): unknown {
  if (!result.issues) return result.value;
  const issues: ValidationIssue[] = result.issues.map((i) => ({ message: String(i.message), path: pathOf(i.path) }));
  const first = issues[0];
  const at = first?.path ? ` at ${first.path}` : '';
  const more = issues.length > 1 ? ` (and ${issues.length - 1} more)` : '';
  throw new ValidationError(`${what} failed its schema${at}: ${first?.message ?? 'invalid'}${more}`, issues);
}

/**
 * The validated (possibly transformed) value, a promise of it for an asynchronous schema, or a
 * ValidationError thrown (rejected) naming the first failing path. `what` names the value:
 * "invoke('save') request", "event 'job:progress'".
 */
export function validate(schema: StandardSchema, value: unknown, what: string): unknown {
  const result = schema['~standard'].validate(value);
  if (result !== null && typeof (result as Promise<StandardResult>).then === 'function') {
    return (result as Promise<StandardResult>).then((r) => outcome(r, what));
  }
  return outcome(result as StandardResult, what);
}
