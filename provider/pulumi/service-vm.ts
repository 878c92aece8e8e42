/** What DiscoveryService's aws and gcp targets share: the plan they deploy, their outputs, the peer packages. */
import * as pulumi from "@pulumi/pulumi";
import { stringify } from "yaml";
import type { RuntimeConfig } from "../runtime/config";
import { vmWireConfig, WireRuntimeConfig } from "../deploy/runtime-config";
import { bootstrapScript, SecretSource } from "../deploy/bootstrap";
import { RuntimeKeys } from "./runtime-keys";

/** A checked runtime config and how to install it, ready for a VM target. */
export interface VmPlan {
  /** The component's name: children are `${name}-<suffix>`. */
  name: string;
  /** The component: every child's parent. */
  parent: pulumi.Resource;
  /** The user's config as wire fields. */
  wire: WireRuntimeConfig;
  /** The same, checked by the runtime's loader (with a placeholder address). */
  runtime: RuntimeConfig;
  /** The port the runtime listens on (and the firewall opens). */
  port: number;
  /** npm spec of the runtime package. */
  packageSpec: string;
  /** Node.js major version. */
  nodeMajor: string;
}

/** What a VM target gives the component. */
export interface VmOutputs {
  /** https://<public address>:<port>. */
  address: pulumi.Output<string>;
  /** Host and user CA public keys, known before the VM starts (the runtime adopts the shipped keys). */
  caPins: pulumi.Output<{ host: string[]; user: string[] }>;
  /** The TLS key's pin. */
  tlsPin: pulumi.Output<string>;
  /** The TLS certificate (PEM). */
  tlsCert: pulumi.Output<string>;
  /** The admin token (secret). */
  adminToken: pulumi.Output<string>;
  /** The cloud's id of the VM. */
  instanceId: pulumi.Output<string>;
}

/** The peer package a target needs, or an error naming the install command. */
export function requirePeer<T>(name: "@pulumi/aws" | "@pulumi/gcp", target: string): T {
  try {
    return require(name) as T;
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === "MODULE_NOT_FOUND" && e.message.includes(name))
      throw new Error(`target "${target}" needs the optional peer ${name}: run npm install ${name}`);
    throw err;
  }
}

/** The https address the runtime is reached at: the config's public_addr, else the VM's static address. */
export function publicAddress(plan: VmPlan, ip: pulumi.Input<string>): pulumi.Output<string> {
  const given = plan.wire.public_addr as string | undefined;
  return given ? pulumi.output(given.replace(/\/$/, "")) : pulumi.interpolate`https://${ip}:${plan.port}`;
}

/** TLS, CA keys and admin token for a runtime reached at `hosts` (its address and any public_addr host). */
export function runtimeKeys(plan: VmPlan, hosts: pulumi.Input<string>[]): RuntimeKeys {
  const given = plan.wire.public_addr as string | undefined;
  const all = given ? [...hosts, new URL(given).hostname] : hosts;
  return new RuntimeKeys(
    `${plan.name}-keys`,
    {
      clusterName: plan.runtime.clusterName,
      hosts: pulumi.all(all).apply((h) => [...new Set(h.filter((x) => x))]),
    },
    { parent: plan.parent },
  );
}

/** The boot script of the VM, for `publicAddr`, with the secrets read from `secrets`. */
export function vmBootScript(
  plan: VmPlan,
  keys: RuntimeKeys,
  publicAddr: pulumi.Output<string>,
  secrets: pulumi.Output<SecretSource>,
  serviceEnv: Record<string, string> = {},
  /** The config with fields only known once resources exist (the event queue's URL); default `plan.wire`. */
  wireOutput: pulumi.Input<WireRuntimeConfig> = plan.wire,
): pulumi.Output<string> {
  const all = pulumi.all([publicAddr, keys.tlsCert, keys.tlsPin, secrets, wireOutput]);
  return all.apply(([addr, tlsCert, tlsPin, source, wire]) =>
    bootstrapScript({
      packageSpec: plan.packageSpec,
      nodeMajor: plan.nodeMajor,
      configYaml: "# written by DiscoveryService\n" + stringify(vmWireConfig(wire, addr, plan.port)),
      tlsCert,
      tlsPin,
      port: plan.port,
      secrets: source,
      serviceEnv,
    }),
  );
}

/** The secret bundle the VM fetches, as a secret. */
export function secretBundleOf(keys: RuntimeKeys): pulumi.Output<string> {
  return pulumi.secret(
    pulumi
      .all([keys.tlsKey, keys.hostCaPrivateKey, keys.userCaPrivateKey, keys.adminToken])
      .apply(([tlsKey, hostCa, userCa, adminToken]) =>
        JSON.stringify({ tls_key: tlsKey, host_ca_key: hostCa, user_ca_key: userCa, admin_token: adminToken }),
      ),
  );
}

/** The outputs every VM target shares, from its keys. */
export function keyOutputs(keys: RuntimeKeys): Pick<VmOutputs, "caPins" | "tlsPin" | "tlsCert" | "adminToken"> {
  return {
    caPins: pulumi
      .all([keys.hostCaPublicKey, keys.userCaPublicKey])
      .apply(([host, user]) => ({ host: [host], user: [user] })),
    tlsPin: keys.tlsPin,
    tlsCert: keys.tlsCert,
    adminToken: pulumi.secret(keys.adminToken),
  };
}
