import * as pulumi from "@pulumi/pulumi";
import { thinProvider } from "./thin-provider";
import type * as dynamic from "@pulumi/pulumi/dynamic";
import type { RuntimeKeys as Keys } from "../deploy/keys";

/** Inputs of RuntimeKeys as the engine hands them to the provider. */
interface RuntimeKeysInputs {
  clusterName: string;
  hosts: string[];
}

/** What the engine sends for a value not known yet during preview. */
const UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";
/** A certificate this close to its end is renewed by the next `pulumi up`. */
const RENEW_BEFORE_MS = 30 * 24 * 3600_000;

// An absolute path, captured by value when Pulumi serializes the provider: the provider process loads the
// module from the package itself (linked or installed), not an inlined copy.
const KEYS_MODULE = require.resolve("../deploy/keys");

function keys(): typeof import("../deploy/keys") {
  return require(KEYS_MODULE);
}

function sameHosts(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/**
 * Makes the TLS certificate, SSH CA keys and admin token once and keeps them in the (encrypted) state. A change
 * of address or cluster name, or a certificate near its end, renews only the certificate: the CA keys and the
 * token stay, so enrolled nodes and programs keep working.
 */
export const runtimeKeysProvider: dynamic.ResourceProvider = {
  async check(_olds: RuntimeKeysInputs, news: RuntimeKeysInputs) {
    const failures: dynamic.CheckFailure[] = [];
    if (!Array.isArray(news.hosts) || news.hosts.length === 0)
      failures.push({ property: "hosts", reason: "must name at least one DNS name or IP address" });
    return { inputs: news, failures };
  },

  async diff(_id: string, olds: RuntimeKeysInputs & Partial<Keys>, news: RuntimeKeysInputs) {
    const unknown = JSON.stringify(news).includes(UNKNOWN);
    const expiring = !olds.tlsNotAfter || Date.parse(olds.tlsNotAfter) - Date.now() < RENEW_BEFORE_MS;
    const changes = unknown || expiring || olds.clusterName !== news.clusterName || !sameHosts(olds.hosts, news.hosts);
    return { changes };
  },

  async create(inputs: RuntimeKeysInputs) {
    const made = await keys().makeRuntimeKeys(inputs.clusterName, inputs.hosts);
    const id = require("crypto").randomUUID() as string;
    return { id, outs: { ...inputs, ...made } };
  },

  async read(id: string, props: RuntimeKeysInputs & Keys) {
    return { id, props }; // nothing outside the state to compare with
  },

  async update(_id: string, olds: RuntimeKeysInputs & Keys, news: RuntimeKeysInputs) {
    const tls = await keys().makeTlsKeys(news.clusterName, news.hosts);
    return { outs: { ...olds, ...news, ...tls } };
  },
};

/** Arguments of RuntimeKeys. */
export interface RuntimeKeysArgs {
  /** The runtime's cluster name: the TLS certificate's common name. */
  clusterName: pulumi.Input<string>;
  /** DNS names and IP addresses the TLS certificate is valid for. */
  hosts: pulumi.Input<pulumi.Input<string>[]>;
}

/** Keys a VM deployment ships to its runtime (type `pulumi-nodejs:dynamic/discovery:RuntimeKeys`). */
export class RuntimeKeys extends pulumi.dynamic.Resource {
  /** PEM TLS certificate. */
  declare public readonly tlsCert: pulumi.Output<string>;
  /** PEM TLS private key (secret). */
  declare public readonly tlsKey: pulumi.Output<string>;
  /** `sha256//<base64>` pin of the TLS public key. */
  declare public readonly tlsPin: pulumi.Output<string>;
  /** The certificate's end of validity. */
  declare public readonly tlsNotAfter: pulumi.Output<string>;
  /** OpenSSH public key of the host CA. */
  declare public readonly hostCaPublicKey: pulumi.Output<string>;
  /** OpenSSH private key of the host CA (secret). */
  declare public readonly hostCaPrivateKey: pulumi.Output<string>;
  /** OpenSSH public key of the user CA. */
  declare public readonly userCaPublicKey: pulumi.Output<string>;
  /** OpenSSH private key of the user CA (secret). */
  declare public readonly userCaPrivateKey: pulumi.Output<string>;
  /** The admin token (secret). */
  declare public readonly adminToken: pulumi.Output<string>;

  /** Declares the keys of one deployment. */
  constructor(name: string, args: RuntimeKeysArgs, opts?: pulumi.CustomResourceOptions) {
    const outputs = {
      tlsCert: undefined,
      tlsKey: undefined,
      tlsPin: undefined,
      tlsNotAfter: undefined,
      hostCaPublicKey: undefined,
      hostCaPrivateKey: undefined,
      userCaPublicKey: undefined,
      userCaPrivateKey: undefined,
      adminToken: undefined,
    };
    super(
      thinProvider(__filename, "runtimeKeysProvider"),
      name,
      { ...outputs, ...args },
      pulumi.mergeOptions(opts, {
        additionalSecretOutputs: ["tlsKey", "hostCaPrivateKey", "userCaPrivateKey", "adminToken"],
      }),
      "discovery",
      "RuntimeKeys",
    );
  }
}
