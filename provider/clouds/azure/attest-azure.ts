/**
 * The azure join: an attested document signed by Azure over the runtime's challenge (which VM, in which
 * subscription, now), the VM's managed identity access token (its resource group and name), the token's
 * `azure.allow` rules, and a live check with `virtualMachines.get`: the VM exists, is the attested one (a VM deleted
 * and recreated under the same name has another vmId) and runs.
 */
import { JoinRefusal } from "../../join/errors";
import type { ChallengeRecord } from "../../runtime/store/types";
import type { Token } from "../../model";
import type { JwksCache } from "../jwks";
import type { AllowProblem } from "../plugin";
import { AccessTokenIdentity, parseAccessTokenShape, verifyAccessToken } from "./access-token";
import {
  AttestedDocument,
  attestedSignature,
  parseAttestedSignedData,
  verifyAttestedDocument,
} from "./attested-document";

const refusal = (code: string, reason: string, status: 400 | 403 | 429 = 403) =>
  new JoinRefusal(code, `azure join: ${reason}`, status);
const quote = (v: unknown) => (JSON.stringify(v) ?? String(v)).slice(0, 80);

/** The join method's static check: the document's and the token's shapes, before anything is loaded or fetched. */
export function checkAzureJoinRequest(body: Record<string, unknown>): void {
  parseAttestedSignedData(attestedSignature(body.attested_data));
  parseAccessTokenShape(body.access_token);
}

/** A VM as the live check sees it. */
export interface AzureVm {
  vmId?: string;
  /** The VM's name (a scale set's VM: `<set>_<instance id>`). */
  name?: string;
  location?: string;
  /** The instance view's `PowerState/...` code, e.g. `PowerState/running`. */
  powerState?: string;
}

/** A failed ARM call: its HTTP status and ARM's error code (`AuthorizationFailed`, ...). */
export class AzureCallError extends Error {
  /** `message` is ARM's. */
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "AzureCallError";
  }
}

/** The one ARM read of the join (a seam: unit tests pass a fake). Undefined when the VM does not exist. */
export interface AzureVirtualMachines {
  get(subscriptionId: string, resourceGroup: string, name: string): Promise<AzureVm | undefined>;
  /** The VM of uniform scale set `scaleSet` whose vmId is `vmId`, undefined when the set has none (or is gone). */
  scaleSetVm(
    subscriptionId: string,
    resourceGroup: string,
    scaleSet: string,
    vmId: string,
  ): Promise<AzureVm | undefined>;
}

/** Who a verified VM is: the document's ids and the token's names. */
export interface AzureIdentity {
  subscriptionId: string;
  vmId: string;
  resourceGroup: string;
  vmName: string;
  /** Set for a VM of a uniform scale set. */
  scaleSet?: string;
  tenantId: string;
}

/** An azure allow rule of a token. */
export type AzureAllowRule = NonNullable<Token["spec"]["azure"]>["allow"][number];

/** The first rule that allows the VM: its subscription, and its resource group (any case) when the rule lists some. */
export function matchAzureRule(id: AzureIdentity, token: Token): AzureAllowRule {
  const rules = (token.spec.azure?.allow ?? []).filter((r) => r.subscription.toLowerCase() === id.subscriptionId);
  const group = id.resourceGroup.toLowerCase();
  const rule = rules.find((r) => !r.resource_groups || r.resource_groups.some((g) => g.toLowerCase() === group));
  if (rule) return rule;
  const name = quote(token.metadata.name);
  if (!rules.length)
    throw refusal("azure_subscription_not_allowed", `subscription ${id.subscriptionId}: no rule of token ${name} allows it`); // prettier-ignore
  throw refusal("azure_resource_group_not_allowed", `resource group ${quote(id.resourceGroup)}: no rule of token ${name} allows it`); // prettier-ignore
}

/** Checked before installing: whether a rule of `token` names the VM's subscription (resource groups: at the join). */
export function azureAllowProblem(token: Token, at: { account: string }): AllowProblem | undefined {
  const subscription = at.account.toLowerCase();
  if ((token.spec.azure?.allow ?? []).some((r) => r.subscription.toLowerCase() === subscription)) return undefined;
  const name = quote(token.metadata.name);
  return {
    reason: `subscription ${at.account}: no rule of token ${name} allows it`,
    fix:
      `add a rule {subscription: ${at.account}} to spec.azure.allow of token ${name} (\`discovery apply -f\`), ` +
      "or name a token that allows the subscription in the matcher's install.join_params.token_name",
  };
}

/** The document and the token speak of one VM: the token's resource id is in the attested subscription. */
function bind(doc: AttestedDocument, token: AccessTokenIdentity): AzureIdentity {
  if (token.subscriptionId !== doc.subscriptionId)
    throw refusal(
      "azure_subscription_mismatch",
      `the access token names subscription ${token.subscriptionId}, the attested document ${doc.subscriptionId}`,
    );
  const { subscriptionId, vmId } = doc;
  return {
    subscriptionId,
    vmId,
    resourceGroup: token.resourceGroup,
    vmName: token.vmName,
    ...(token.scaleSet && { scaleSet: token.scaleSet }),
    tenantId: token.tenantId,
  };
}

/** Asks ARM whether the VM still is the attested one and runs; its location, for the region label. */
export async function checkVmLive(id: AzureIdentity, vms: AzureVirtualMachines): Promise<AzureVm> {
  const group = `/subscriptions/${id.subscriptionId}/resourceGroups/${id.resourceGroup}/providers/Microsoft.Compute`;
  const where = id.scaleSet
    ? `${group}/virtualMachineScaleSets/${id.scaleSet} (VM ${id.vmId})`
    : `${group}/virtualMachines/${id.vmName}`;
  const action = id.scaleSet
    ? "Microsoft.Compute/virtualMachineScaleSets/virtualMachines/read"
    : "Microsoft.Compute/virtualMachines/read";
  let vm: AzureVm | undefined;
  try {
    // A scale set's VM is found by its attested vmId among the set's VMs; the name in a token may be absent.
    vm = id.scaleSet
      ? await vms.scaleSetVm(id.subscriptionId, id.resourceGroup, id.scaleSet, id.vmId)
      : await vms.get(id.subscriptionId, id.resourceGroup, id.vmName);
  } catch (err) {
    if (!(err instanceof AzureCallError)) throw err;
    if (err.status === 429) throw refusal("azure_throttled", `ARM throttled the read of ${where}; retry shortly`, 429);
    throw refusal(
      "azure_vm_check_failed",
      `reading ${where} failed (${err.code}: ${err.message.slice(0, 200)}); the runtime's identity needs ${action}`,
    );
  }
  if (!vm) throw refusal("azure_vm_not_found", `${where} does not exist`);
  if (vm.vmId?.toLowerCase() !== id.vmId)
    throw refusal("azure_vm_recreated", `${where} is VM ${quote(vm.vmId)}, not the attested ${id.vmId}`);
  if (vm.powerState !== "PowerState/running")
    throw refusal("azure_vm_not_running", `${where} is ${quote(vm.powerState ?? "(no power state)")}, not running`);
  // A token naming a scale set's instance must name this VM of it, not a sibling.
  if (id.scaleSet && id.vmName && vm.name && vm.name.toLowerCase() !== id.vmName.toLowerCase())
    throw refusal("azure_vm_recreated", `${where} is ${quote(vm.name)}, not the ${id.vmName} the token names`);
  return vm;
}

/** Inputs of {@link attestAzure} besides the request. */
export interface AzureAttestContext {
  token: Token;
  /** The challenge the service consumed for this join: the nonce the document must carry. */
  challenge?: ChallengeRecord;
  extraCaPems: string[];
  jwks: JwksCache;
  now: Date;
  vms: AzureVirtualMachines;
}

/** What the join service needs of an azure join. */
export interface AzureAttestation {
  /** `<subscription>-<vmId>`: unique per VM, so one join per VM. */
  nodeName: string;
  labels: Record<string, string>;
  principals: string[];
  identity: AzureIdentity;
}

/** The whole azure join check: Azure's signature over the challenge, Entra ID's token, the allow rule, the live VM. */
export async function attestAzure(body: Record<string, unknown>, ctx: AzureAttestContext): Promise<AzureAttestation> {
  if (ctx.token.spec.join_method !== "azure")
    throw new JoinRefusal("join_method_mismatch", `token ${quote(ctx.token.metadata.name)} is not an azure token`, 403);
  if (!ctx.challenge) throw refusal("azure_nonce_mismatch", "no challenge was consumed for this join");
  const doc = await verifyAttestedDocument(body.attested_data, { extraCaPems: ctx.extraCaPems, now: ctx.now });
  // The nonce binds the document to this join: one fetched for another challenge (or token) is worth nothing.
  if (doc.nonce !== ctx.challenge.challenge)
    throw refusal("azure_nonce_mismatch", "the attested document's nonce is not the challenge of this join");
  const token = await verifyAccessToken(body.access_token as string, { jwks: ctx.jwks, now: ctx.now });
  const identity = bind(doc, token);
  matchAzureRule(identity, ctx.token);
  const vm = await checkVmLive(identity, ctx.vms);
  const nodeName = `${identity.subscriptionId}-${identity.vmId}`;
  const vmName = vm.name ?? identity.vmName;
  return {
    nodeName,
    labels: {
      "discovery/origin": "cloud",
      "discovery/subscription-id": identity.subscriptionId,
      "discovery/vm-id": identity.vmId,
      "discovery/instance-id": identity.vmId,
      ...(vm.location && { "discovery/region": vm.location }),
      "discovery/resource-group": identity.resourceGroup,
      "discovery/name": vmName,
      ...(identity.scaleSet && { "discovery/scale-set": identity.scaleSet }),
    },
    principals: vmName ? [nodeName, vmName] : [nodeName],
    identity,
  };
}
