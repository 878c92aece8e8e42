/** snake_case to camelCase at the type level: `aws_iid_ttl` -> `awsIidTtl`. */
export type CamelCase<S extends string> = S extends `${infer H}_${infer T}` ? `${H}${Capitalize<CamelCase<T>>}` : S;

/** Deeply camel-cases the keys of a wire (snake_case) type; map types keep string keys. */
export type Camelize<T> = T extends readonly (infer U)[]
  ? Camelize<U>[]
  : T extends object
    ? { [K in keyof T as K extends string ? CamelCase<K> : K]: Camelize<T[K]> }
    : T;

/** Fields whose values are maps of user data (tags, labels): their keys are never renamed. */
export const OPAQUE_MAPS: ReadonlySet<string> = new Set(["tags", "labels"]);

function convert(value: unknown, rename: (key: string) => string, opaque: boolean): unknown {
  if (Array.isArray(value)) return value.map((v) => convert(v, rename, false));
  if (value === null || typeof value !== "object") return value;
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) {
    const name = opaque ? key : rename(key);
    out[name] = opaque ? v : convert(v, rename, OPAQUE_MAPS.has(key));
  }
  return out;
}

/** `aws_iid_ttl` -> `awsIidTtl`. */
export function camelCase(key: string): string {
  return key.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/** `awsIidTtl` -> `aws_iid_ttl`. */
export function snakeCase(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/** Converts wire (snake_case) objects to SDK (camelCase) objects, leaving tag and label keys alone. */
export function camelize<T>(value: T): Camelize<T> {
  return convert(value, camelCase, false) as Camelize<T>;
}

/** Converts SDK (camelCase) objects to wire (snake_case) objects, leaving tag and label keys alone. */
export function snakify(value: unknown): unknown {
  return convert(value, snakeCase, false);
}
