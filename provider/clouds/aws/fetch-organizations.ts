/** The accounts an organization matcher covers: a walk over the organization's tree of organizational units. */
import {
  DescribeOrganizationCommand,
  ListAccountsForParentCommand,
  ListOrganizationalUnitsForParentCommand,
  ListRootsCommand,
  OrganizationsClient,
} from "@aws-sdk/client-organizations";
import { collectPages, ScopeFailure } from "./fetch-support";

/** A matcher's `organization` block, after validation. */
export interface OrganizationScope {
  organization_id: string;
  organizational_units: { include: string[]; exclude: string[] };
}

/** What the walk found. */
export interface OrganizationAccounts {
  /** The partition of the organization's ARN (`aws`, `aws-cn`, `aws-us-gov`), for the member role ARNs. */
  partition: string;
  /** ACTIVE accounts in the included units, sorted. */
  accounts: string[];
}

/** Runs one Organizations call, paced and retried by the caller. */
export type OrganizationsCall = <T>(fn: () => Promise<T>) => Promise<T>;

/**
 * The ACTIVE accounts under the included organizational units and their descendants, minus the excluded units and
 * theirs. `*` in include (or a root id) covers the whole organization; exclusion wins over inclusion, so excluding a
 * unit removes its sub-units even when they are named in include. Refuses credentials that reach another
 * organization than the matcher names: scanning the wrong organization's accounts is never what the user meant.
 */
export async function listOrganizationAccounts(
  client: OrganizationsClient,
  scope: OrganizationScope,
  call: OrganizationsCall,
): Promise<OrganizationAccounts> {
  const described = await call(() => client.send(new DescribeOrganizationCommand({})));
  const org = described.Organization;
  if (org?.Id !== scope.organization_id)
    throw new ScopeFailure(
      "OrganizationMismatch",
      `the discovery credentials belong to organization ${org?.Id ?? "(none)"}, not ${scope.organization_id}; ` +
        "fix organization.organization_id or run discovery with the management (or delegated administrator) account",
    );
  const partition = /^arn:([^:]+):/.exec(org.Arn ?? "")?.[1] ?? "aws";
  const include = new Set(scope.organizational_units.include);
  const exclude = new Set(scope.organizational_units.exclude);
  const accounts = new Set<string>();

  const roots = await collectPages(async (NextToken) => {
    const out = await call(() => client.send(new ListRootsCommand({ NextToken })));
    return { items: out.Roots, next: out.NextToken };
  });

  // Units are visited concurrently; the pacing in `call` keeps that within the Organizations API's limits.
  async function visit(parentId: string, ancestorIncluded: boolean): Promise<void> {
    if (exclude.has(parentId)) return;
    const included = ancestorIncluded || include.has("*") || include.has(parentId);
    const childUnits = collectPages(async (NextToken) => {
      const out = await call(() =>
        client.send(new ListOrganizationalUnitsForParentCommand({ ParentId: parentId, NextToken })),
      );
      return { items: out.OrganizationalUnits, next: out.NextToken };
    });
    // Units outside the selection are still walked (an included unit may sit below them), but their accounts are
    // not listed: that saves a call per unit in a large organization.
    const memberAccounts = included
      ? collectPages(async (NextToken) => {
          const out = await call(() =>
            client.send(new ListAccountsForParentCommand({ ParentId: parentId, NextToken })),
          );
          return { items: out.Accounts, next: out.NextToken };
        })
      : Promise.resolve([]);
    const [units, members] = await Promise.all([childUnits, memberAccounts]);
    for (const a of members) {
      // `Status` is being retired in favour of `State`; either says whether the account can be entered.
      if (a.Id && (a.State ?? a.Status) === "ACTIVE") accounts.add(a.Id);
    }
    await Promise.all(units.filter((u) => u.Id).map((u) => visit(u.Id as string, included)));
  }

  await Promise.all(roots.filter((r) => r.Id).map((r) => visit(r.Id as string, false)));
  return { partition, accounts: [...accounts].sort() };
}
