/**
 * Runs a policy on hand-written resources, without a policy server or an engine: how this package's tests (and
 * yours, for packs built on createPolicyPack) check a rule directly.
 */
import type {
  PolicyResource,
  PolicyResourceOptions,
  ResourceValidationArgs,
  ResourceValidationPolicy,
  StackValidationPolicy,
} from "@pulumi/policy";

/** A resource as a test writes it: its type and inputs; name and urn are made up when left out. */
export interface ResourceUnderTest {
  type: string;
  props: Record<string, unknown>;
  name?: string;
  urn?: string;
  /** The provider's inputs (a GCP provider's `project`, say). */
  providerProps?: Record<string, unknown>;
}

/** A violation a stack policy reported, with the resource it named (if any). */
export interface StackViolation {
  message: string;
  urn?: string;
}

const NO_OPTIONS: PolicyResourceOptions = {
  protect: false,
  ignoreChanges: [],
  aliases: [],
  customTimeouts: { createSeconds: 0, updateSeconds: 0, deleteSeconds: 0 },
  additionalSecretOutputs: [],
};

/** The config a policy sees: its schema's defaults, overridden by `config` (as the engine reconciles them). */
function effectiveConfig(policy: ResourceValidationPolicy | StackValidationPolicy, config: object): object {
  const defaults: Record<string, unknown> = {};
  for (const [k, schema] of Object.entries(policy.configSchema?.properties ?? {}))
    if (schema.default !== undefined) defaults[k] = schema.default;
  return { ...defaults, ...config };
}

/** Thrown by `notApplicable`: the policy decided the resource is not its business. */
class NotApplicable extends Error {}

function common(r: ResourceUnderTest, i: number, config: object) {
  const name = r.name ?? `r${i}`;
  return {
    type: r.type,
    props: r.props,
    name,
    urn: r.urn ?? `urn:pulumi:test::policy-test::${r.type}::${name}`,
    opts: NO_OPTIONS,
    provider: r.providerProps
      ? { type: "pulumi:providers:test", props: r.providerProps, urn: "urn:pulumi:test::p::provider", name: "p" }
      : undefined,
    isType: () => false,
    getConfig: <T extends object>() => config as T,
    notApplicable: (reason?: string): never => {
      throw new NotApplicable(reason);
    },
  };
}

/** Runs `policy` on one resource's inputs; the messages it reported, in order (none when not applicable). */
export async function checkResource(
  policy: ResourceValidationPolicy,
  resource: ResourceUnderTest,
  config: object = {},
): Promise<string[]> {
  const messages: string[] = [];
  const args: ResourceValidationArgs = {
    ...common(resource, 0, effectiveConfig(policy, config)),
    stackTags: new Map(),
    asType: () => undefined,
  };
  const validations = Array.isArray(policy.validateResource) ? policy.validateResource : [policy.validateResource];
  try {
    for (const validate of validations) await validate?.(args, (message) => messages.push(message));
  } catch (e) {
    if (e instanceof NotApplicable) return [];
    throw e;
  }
  return messages;
}

/** Runs a stack policy over `resources` (their outputs, as after a preview); the violations it reported. */
export async function checkStack(
  policy: StackValidationPolicy,
  resources: ResourceUnderTest[],
  config: object = {},
): Promise<StackViolation[]> {
  const effective = effectiveConfig(policy, config);
  const stack: PolicyResource[] = resources.map((r, i) => ({
    ...common(r, i, effective),
    dependencies: [],
    propertyDependencies: {},
    asType: () => undefined,
  }));
  const violations: StackViolation[] = [];
  try {
    await policy.validateStack(
      {
        resources: stack,
        stackTags: new Map(),
        getConfig: <T extends object>() => effective as T,
        notApplicable: (reason?: string): never => {
          throw new NotApplicable(reason);
        },
      },
      (message, urn) => violations.push({ message, ...(urn ? { urn } : {}) }),
    );
  } catch (e) {
    if (e instanceof NotApplicable) return [];
    throw e;
  }
  return violations;
}
