import type * as dynamic from "@pulumi/pulumi/dynamic";

const METHODS = ["check", "diff", "create", "read", "update", "delete"] as const;

/**
 * The provider object a dynamic resource hands to Pulumi, which serializes it (its functions and everything they
 * reach) into every resource's inputs and state. This one is a few lines whatever the provider: each method loads
 * `module` (an absolute path inside this package, linked or installed) in the provider process and calls the
 * same method of its export `exportName` (called with `args` when it is a factory). It has exactly the methods
 * the real provider has, so the engine's defaults for the missing ones are unchanged. Measured in bench/pulumi:
 * the serialized full provider was about 11 KB per resource, rewritten into the state after every operation.
 */
export function thinProvider(module: string, exportName: string, args?: string[]): dynamic.ResourceProvider {
  const real = resolve(require(module), exportName, args);
  const thin: Record<string, (...a: unknown[]) => unknown> = {};
  for (const method of METHODS) {
    if (typeof real[method] !== "function") continue;
    thin[method] = (...a: unknown[]) => {
      const exported = require(module)[exportName];
      const provider = args ? exported(...args) : exported;
      return provider[method](...a);
    };
  }
  return thin as unknown as dynamic.ResourceProvider;
}

function resolve(
  mod: Record<string, unknown>,
  exportName: string,
  args: string[] | undefined,
): Record<string, unknown> {
  const exported = mod[exportName];
  const provider = args ? (exported as (...a: string[]) => unknown)(...args) : exported;
  if (!provider || typeof provider !== "object")
    throw new Error(`${exportName} is not a dynamic provider${args ? " factory" : ""} of ${exportName}'s module`);
  return provider as Record<string, unknown>;
}
