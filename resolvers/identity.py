"""Identity authentication, and verifying a legal representative without disclosure."""

from __future__ import annotations

import datetime as dt
import enum
from typing import TYPE_CHECKING, Any, Self

import strawberry

from gateway.sources import admitted
from loaders.base import Document
from loaders.codes import IdNumberError, validate_id_number
from loaders.registry import Verification, verify_legal_representative
from resolvers.context import Info
from resolvers.errors import bad_user_input, rate_limited
from resolvers.permissions import Tier, visible
from resolvers.scalars import USCC, by_value

__all__ = ["IdentityFields", "IdentityQuery", "is_verified"]

IDENTITY_READ = "identity:read"
IDENTITY_VERIFY = "identity:verify"
_NAME_MAX = 50


@strawberry.enum(description="State of an enterprise's identity authentication.")
class AuthenticationStatus(enum.Enum):
    VERIFIED = "VERIFIED"
    PENDING = "PENDING"
    EXPIRED = "EXPIRED"
    REJECTED = "REJECTED"
    NOT_APPLIED = strawberry.enum_value("NOT_APPLIED", description="Never applied for.")


_authentication_status = by_value(AuthenticationStatus)
_NOT_APPLIED = AuthenticationStatus.NOT_APPLIED


@strawberry.enum(description="How the identity was authenticated.")
class AuthenticationMethod(enum.Enum):
    LEGAL_REPRESENTATIVE_FACE = "LEGAL_REPRESENTATIVE_FACE"
    CORPORATE_BANK_TRANSFER = "CORPORATE_BANK_TRANSFER"
    BUSINESS_LICENSE_VERIFICATION = "BUSINESS_LICENSE_VERIFICATION"


_authentication_method = by_value(AuthenticationMethod)


def is_verified(doc: Document | None, now: dt.datetime | None = None) -> bool:
    """Verified, and not lapsed: a verification past its expiry no longer counts."""
    if doc is None or not doc["verified"]:
        return False
    expires_at: dt.datetime | None = doc["expires_at"]
    return expires_at is None or expires_at > (now or dt.datetime.now(dt.UTC))


@strawberry.type(description="Identity authentication (实名认证) of an enterprise.")
class IdentityAuthentication:
    enterprise_uscc: strawberry.Private[str]
    #: The authentication document (None: never applied for); each field reads its
    #: part when asked for (a badge or a search hit asks only whether it is verified).
    document: strawberry.Private[Document | None]

    @visible(Tier.PUBLIC, "Whether the identity is currently verified.")
    def verified(self) -> bool:
        return is_verified(self.document)

    @visible(Tier.MEMBER, "State of the authentication.")
    def status(self) -> AuthenticationStatus | None:
        doc = self.document
        return _NOT_APPLIED if doc is None else _authentication_status(doc["status"])

    @visible(Tier.MEMBER, "When it was verified.")
    def verified_at(self) -> dt.datetime | None:
        verified_at: dt.datetime | None = self._get("verified_at")
        return verified_at

    @visible(Tier.MEMBER, "When the verification lapses.")
    def expires_at(self) -> dt.datetime | None:
        expires_at: dt.datetime | None = self._get("expires_at")
        return expires_at

    @visible(Tier.OWNER, "How it was authenticated.", scopes=[IDENTITY_READ])
    def method(self) -> AuthenticationMethod | None:
        doc = self.document
        return None if doc is None else _authentication_method(doc["method"])

    @visible(Tier.OWNER, "Reference of the evidence on file.", scopes=[IDENTITY_READ])
    def evidence_reference(self) -> str | None:
        reference: str | None = self._get("evidence_ref")
        return reference

    def _get(self, key: str) -> Any:
        return None if self.document is None else self.document[key]

    @classmethod
    def from_document(cls, uscc: str, doc: Document | None) -> Self:
        return cls(enterprise_uscc=uscc, document=doc)


@strawberry.type
class IdentityFields:
    """Enterprise fields of the identity domain."""

    if TYPE_CHECKING:
        uscc: USCC

    @visible(Tier.PUBLIC, "Identity authentication; `verified` is public, the rest is not.")
    def identity_authentication(self, info: Info) -> IdentityAuthentication:
        found: IdentityAuthentication = info.context.loaders.authentication_by_uscc.then(
            self.uscc, lambda doc: IdentityAuthentication.from_document(self.uscc, doc)
        )
        return found


VerificationResult = strawberry.enum(
    Verification,
    name="VerificationResult",
    description="MATCH: both agree; MISMATCH: the enterprise exists, they do not; "
    "NOT_FOUND: no legal representative on file for that USCC.",
)


@strawberry.type(description="The answer to a verification; no stored value is ever returned.")
class LegalRepresentativeVerification:
    enterprise_uscc: strawberry.Private[str]
    uscc: USCC = visible(Tier.SCOPE, "The enterprise asked about.", scopes=[IDENTITY_VERIFY])
    result: Verification = visible(
        Tier.SCOPE, "Whether name and ID number match.", scopes=[IDENTITY_VERIFY]
    )


@strawberry.type
class IdentityQuery:
    @visible(
        Tier.SCOPE,
        "Does this name and ID number belong to the enterprise's legal representative? "
        "For service clients with scope identity:verify; rate-limited per client and "
        "audited. `idNumber` must be a valid 18-character resident ID number "
        "(GB 11643); `name` 1 to 50 characters.",
        scopes=[IDENTITY_VERIFY],
    )
    async def verify_legal_representative(
        self, info: Info, uscc: USCC, name: str, id_number: str
    ) -> LegalRepresentativeVerification | None:
        context = info.context
        if context.http_method != "POST":
            raise bad_user_input(
                "send verifyLegalRepresentative as a POST: an ID number must not travel in a URL"
            )
        try:
            number = validate_id_number(id_number)
        except IdNumberError as exc:
            raise bad_user_input(str(exc)) from None
        clean_name = name.strip()
        if not 0 < len(clean_name) <= _NAME_MAX:
            raise bad_user_input(f"name must be 1 to {_NAME_MAX} characters")
        await admitted()  # the verification budget, the registry and the audit trail
        if not await context.limits.hit(context.limits.verify, "verify", context.viewer.subject):
            raise rate_limited(f"verifyLegalRepresentative is limited to {context.limits.verify}")
        result = await verify_legal_representative(
            context.sources, uscc, clean_name, number, deadline=context.loaders.deadline
        )
        context.audit.action(
            uscc,
            "verify_legal_representative",
            result.value,
            coordinate="Query.verifyLegalRepresentative",
            path=tuple(info._raw_info.path.as_list()),
            scopes=(IDENTITY_VERIFY,),
        )
        return LegalRepresentativeVerification(enterprise_uscc=uscc, uscc=uscc, result=result)
