/**
 * The ready-to-run policy pack shipped in the package: every discovery policy with its default level and config.
 * Run it with `pulumi preview --policy-pack node_modules/pulumi-discovery/dist/policy/pack`; set config with
 * `--policy-pack-config FILE`. To change the set of policies, write your own pack around createPolicyPack.
 */
import { createPolicyPack } from "..";

createPolicyPack("pulumi-discovery");
