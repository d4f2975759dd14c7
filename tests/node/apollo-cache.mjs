// Apollo Client's normalised cache against a live gateway: two queries over one
// enterprise with different selections, then both read back from the cache alone.
// `node apollo-cache.mjs <graphql url> <bearer token> <uscc> [--no-policies]`
// Prints {"warnings": [...], "reads": {...}} as JSON.
import apollo from "@apollo/client/core/core.cjs";
import { typePolicies } from "./type-policies.mjs";

const { ApolloClient, InMemoryCache, HttpLink, gql } = apollo;
const [url, token, uscc, flag] = process.argv.slice(2);
const warnings = [];
for (const level of ["warn", "error"]) {
  console[level] = (...args) => warnings.push(args.map(String).join(" "));
}

const QUERIES = {
  Summary: gql`
    query Summary($u: USCC!) {
      enterprise(uscc: $u) {
        id name
        region { code }
        registeredCapital { amount }
        identityAuthentication { verified }
        businessFiles { platform storeCount }
      }
    }`,
  Details: gql`
    query Details($u: USCC!) {
      enterprise(uscc: $u) {
        id
        region { name province }
        registeredCapital { currency }
        identityAuthentication { verified status verifiedAt }
        integrityLevel { grade score }
        serviceStatus { state }
        legalRepresentative { name }
        businessFiles { platform disputeCount complaintCount }
      }
    }`,
};

const client = new ApolloClient({
  link: new HttpLink({ uri: url, headers: { authorization: `Bearer ${token}` }, fetch }),
  cache: new InMemoryCache(flag === "--no-policies" ? {} : { typePolicies }),
});
for (const query of Object.values(QUERIES)) {
  await client.query({ query, variables: { u: uscc }, fetchPolicy: "network-only" });
}
const reads = {};
for (const [name, query] of Object.entries(QUERIES)) {
  reads[name] = client.readQuery({ query, variables: { u: uscc } });
}
process.stdout.write(JSON.stringify({ warnings, reads }));
