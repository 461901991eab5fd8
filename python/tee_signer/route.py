"""SDKs that sign with `w3.eth.account.sign_transaction(tx, account.key)`.

agent0-sdk, chaoschain-sdk and others take an account, then sign with its
key through eth_account rather than through the account. A `TeeAccount`
has no key: its `key` is a `TeeKey`, a handle that names the slot and holds
no secret. `use_with()` makes eth_account route a handle to its account,
so those SDKs sign in the signer, unchanged. A key given as a string
`tee-signer:slot/N@ENDPOINT` (a wallet file's or an environment variable's,
what `PhalaDstackTEE.generate_key` hands out) is routed the same way:

    from tee_signer import TeeAccount, use_with
    use_with()                      # every eth_account Account (SDKs build their own Web3)
    use_with(w3)                    # or only w3.eth.account

Without it, whatever receives the handle fails with an error that names it
(eth_account cannot read it as a key; `bytes()`, `hex()` and `int()` of it
raise `UnsupportedOperation`): it never signs with a made-up key and there
is no secret in it to leak.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from eth_account import Account
from eth_utils.decorators import combomethod

from .errors import UnsupportedOperation

if TYPE_CHECKING:
    from .account import TeeAccount


class TeeKey:
    """What `TeeAccount.key` returns: the account it stands for, no secret."""

    __slots__ = ("account",)

    def __init__(self, account: TeeAccount) -> None:
        self.account = account

    def __repr__(self) -> str:
        return (
            f"TeeKey(slot {self.account.slot} of the TEE signer, {self.account.address}: "
            "the key stays in the signer; tee_signer.use_with() routes eth_account to it)"
        )

    def _refuse(self, *_: Any) -> Any:
        raise UnsupportedOperation(f"{self!r} has no key bytes to give")

    __bytes__ = __index__ = __int__ = hex = _refuse

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TeeKey) and other.account is self.account

    def __hash__(self) -> int:
        return id(self.account)


def _key_at(position: int) -> Callable[[tuple[Any, ...], dict[str, Any]], Any]:
    def key(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if "private_key" in kwargs:
            return kwargs["private_key"]
        return args[position] if len(args) > position else None

    return key


def _without(position: int, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    kwargs = {k: v for k, v in kwargs.items() if k != "private_key"}
    args = args[:position] + args[position + 1 :] if len(args) > position else args
    return args, kwargs


#: eth_account's methods that take a key: where the key is, and what the
#: account does instead (`None`: the account itself, for `from_key`).
_ROUTES: dict[str, tuple[int, str | None]] = {
    "from_key": (0, None),
    "sign_transaction": (1, "sign_transaction"),
    "sign_message": (1, "sign_message"),
    "sign_typed_data": (0, "sign_typed_data"),
    "unsafe_sign_hash": (1, "unsafe_sign_hash"),
    "sign_authorization": (1, "sign_authorization"),
    "encrypt": (0, "encrypt"),
}


#: A key that names a slot of a signer instead of holding a secret, as a
#: wallet file or an environment variable holds a key: what
#: `PhalaDstackTEE.generate_key` hands out as `private_key`.
HANDLE_PREFIX = "tee-signer:slot/"


def _handle(key: Any) -> Any:
    """`key` as a `TeeKey` if it is a handle string
    (`tee-signer:slot/N@ENDPOINT`), else unchanged."""
    if isinstance(key, str) and key.startswith(HANDLE_PREFIX):
        from .account import TeeAccount

        slot, sep, endpoint = key[len(HANDLE_PREFIX) :].partition("@")
        if not sep or not slot.isdigit():
            raise UnsupportedOperation(f"{key!r}: a signer handle is tee-signer:slot/N@ENDPOINT")
        return TeeKey(TeeAccount(endpoint, int(slot)))
    return key


def _route_call(name: str, original: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """`original(*args, **kwargs)` (a bound method) unless its key is a
    `TeeKey` or a handle string: then the key's account does it."""
    position, method = _ROUTES[name]
    key = _handle(_key_at(position)(args, kwargs))
    if not isinstance(key, TeeKey):
        return original(*args, **kwargs)
    if method is None:
        return key.account
    rest, kw = _without(position, args, kwargs)
    return getattr(key.account, method)(*rest, **kw)


def _class_route(name: str, descriptor: Any) -> Callable[..., Any]:
    """For the class: the original descriptor (a combomethod or a
    classmethod) bound as eth_account would have bound it."""

    def route(self_or_cls: Any, *args: Any, **kwargs: Any) -> Any:
        cls = self_or_cls if isinstance(self_or_cls, type) else type(self_or_cls)
        obj = None if isinstance(self_or_cls, type) else self_or_cls
        return _route_call(name, descriptor.__get__(obj, cls), args, kwargs)

    return route


def _instance_route(name: str, bound: Callable[..., Any]) -> Callable[..., Any]:
    def route(*args: Any, **kwargs: Any) -> Any:
        return _route_call(name, bound, args, kwargs)

    return route


def use_with(target: Any = None) -> Callable[[], None]:
    """Routes `TeeKey` handles given to eth_account to their `TeeAccount`:
    for `target` a `Web3`, its `w3.eth.account`; an eth_account `Account`
    instance, that one; `None`, the `Account` class (every instance, the
    ones SDKs create inside included). Other keys are signed as before.
    Returns a function that undoes it."""
    if target is None:
        originals = {n: Account.__dict__[n] for n in _ROUTES}
        for name, original in originals.items():
            setattr(Account, name, combomethod(_class_route(name, original)))

        def undo() -> None:
            for name, original in originals.items():
                setattr(Account, name, original)

        return undo
    owner = target.eth.account if hasattr(target, "eth") else target
    before = {n: owner.__dict__.get(n) for n in _ROUTES}
    for name in _ROUTES:
        setattr(owner, name, _instance_route(name, getattr(owner, name)))

    def undo_instance() -> None:
        for name, previous in before.items():
            if previous is None:
                owner.__dict__.pop(name, None)
            else:
                setattr(owner, name, previous)

    return undo_instance
