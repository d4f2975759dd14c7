// Apollo Client (3.x) type policies for integrity-gateway: the README shows this file.
// Enterprises and the other Relay nodes normalise by their `id` on their own; these make
// the objects that belong to one of them (they have no id) merge instead of replace,
// so two queries with different selections of one enterprise are both kept.
const merged = { merge: true };

/** Merges two lists of an enterprise's platform files by their `platform`. */
function byPlatform(existing = [], incoming, { readField, mergeObjects }) {
  return incoming.map((file) => {
    const platform = readField("platform", file);
    const before = existing.find((old) => readField("platform", old) === platform);
    return before === undefined ? file : mergeObjects(before, file);
  });
}

export const typePolicies = {
  Enterprise: { fields: { businessFiles: { merge: byPlatform } } },
  IntegrityBadge: { keyFields: ["uscc"] },
  Region: merged,
  Money: merged,
  OperatingPeriod: merged,
  IdentityAuthentication: merged,
  LegalRepresentative: merged,
  ServiceStatus: merged,
  IntegrityLevel: merged,
  Chengxintong: merged,
  PageInfo: merged,
  ShareholderConnection: merged,
  ChangeRecordConnection: merged,
  StoreConnection: merged,
  CertificationConnection: merged,
  RiskRecordConnection: merged,
  NotificationConnection: merged,
  CorrectionRequestConnection: merged,
  AccessRecordConnection: merged,
};
