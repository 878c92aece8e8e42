import {
  CreateAccountCommand,
  CreateOrganizationalUnitCommand,
  ListOrganizationalUnitsForParentCommand,
  ListRootsCommand,
  MoveAccountCommand,
  OrganizationsClient,
} from "@aws-sdk/client-organizations";
import { MOTO_CREDENTIALS } from "./moto";
import { readSandboxState } from "./sandbox-control";

/** A member account made in the sandbox's organization. */
export interface SandboxAccount {
  account: string;
  name: string;
  /** The organizational unit it was moved into (`ou-...`), or the root (`r-...`). */
  parent: string;
}

/**
 * `discovery sandbox account`: a member account of the organization seeded in moto's default account, made as
 * `organizations create-account` would and moved into the unit named `unit` (made under the root when missing).
 * Saves users of examples/aws-organization an AWS CLI.
 */
export async function createSandboxAccount(dir: string, name: string, unit?: string): Promise<SandboxAccount> {
  const state = readSandboxState(dir);
  if (!state)
    throw new Error(`--dir ${dir}: no sandbox runs there; start one with 'discovery sandbox start --dir ${dir}'`);
  if (!/^[\w .-]{1,50}$/.test(name)) throw new Error(`--name "${name}": 1 to 50 letters, digits, spaces, _ . -`);
  if (unit !== undefined && !/^[\w .-]{1,128}$/.test(unit))
    throw new Error(`--unit "${unit}": 1 to 128 letters, digits, spaces, _ . -`);
  const client = new OrganizationsClient({ region: "us-east-1", endpoint: state.moto, credentials: MOTO_CREDENTIALS });
  try {
    const root = (await client.send(new ListRootsCommand({}))).Roots?.[0]?.Id;
    if (!root) throw new Error("the sandbox's moto has no organization; restart the sandbox");
    let parent = root;
    if (unit !== undefined) {
      const units = (await client.send(new ListOrganizationalUnitsForParentCommand({ ParentId: root })))
        .OrganizationalUnits;
      parent =
        units?.find((u) => u.Name === unit)?.Id ??
        (await client.send(new CreateOrganizationalUnitCommand({ ParentId: root, Name: unit }))).OrganizationalUnit!
          .Id!;
    }
    const email = `${name.toLowerCase().replace(/[^a-z0-9]+/g, "-")}@example.com`;
    const made = await client.send(new CreateAccountCommand({ AccountName: name, Email: email }));
    const account = made.CreateAccountStatus?.AccountId;
    if (!account) throw new Error(`create-account for ${name}: moto returned no account id`);
    if (parent !== root)
      await client.send(
        new MoveAccountCommand({ AccountId: account, SourceParentId: root, DestinationParentId: parent }),
      );
    return { account, name, parent };
  } finally {
    client.destroy();
  }
}
