// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @dev The ERC-8004 v2.0.0 registries' reads a TEE gate needs.
interface IERC8004Identity {
    function getAgentWallet(uint256 agentId) external view returns (address);
}

interface IERC8004Validation {
    function getValidationStatus(bytes32 requestHash)
        external
        view
        returns (
            address validatorAddress,
            uint256 agentId,
            uint8 response,
            bytes32 responseHash,
            string memory tag,
            uint256 lastUpdate
        );
}

/// @title RequireTEE: gate a function on an agent's TEE verdict.
/// @notice Passes only for an agent holding a 100 verdict, under the tag
/// `tee-attestation` (tee-signer's validators) or `tee` (ERC-8004's TEE
/// work), from a validator the deployer trusts, no older than `maxVerdictAge`,
/// about the address the identity registry names as the agent's wallet now.
/// The last check reads the validator's `responseHash`, which tee-signer's
/// validators set to `keccak256(signer ‖ keccak256(report))`: the caller
/// passes the report's hash (`reportHash`, printed by `tee-signer validate`),
/// and a verdict about another address than the current wallet does not
/// pass. Each refusal reverts with its reason.
abstract contract RequireTEE {
    IERC8004Identity public immutable identityRegistry;
    IERC8004Validation public immutable validationRegistry;
    uint256 public immutable maxVerdictAge;
    mapping(address => bool) public trustedValidator;

    bytes32 private constant TAG_TEE_ATTESTATION = keccak256("tee-attestation");
    bytes32 private constant TAG_TEE = keccak256("tee");

    constructor(address identity, address validation, address[] memory validators, uint256 maxAge) {
        identityRegistry = IERC8004Identity(identity);
        validationRegistry = IERC8004Validation(validation);
        maxVerdictAge = maxAge;
        for (uint256 i = 0; i < validators.length; i++) {
            trustedValidator[validators[i]] = true;
        }
    }

    /// @param agentId the agent
    /// @param requestHash the validation request the verdict answers
    /// @param reportHash keccak256 of the validator's report
    modifier requireTEE(uint256 agentId, bytes32 requestHash, bytes32 reportHash) {
        _requireTEE(agentId, requestHash, reportHash);
        _;
    }

    /// What the Validation Registry holds of one request.
    struct Verdict {
        address validator;
        uint256 agentId;
        uint8 response;
        bytes32 responseHash;
        bytes32 tagHash;
        uint256 lastUpdate;
    }

    function _requireTEE(uint256 agentId, bytes32 requestHash, bytes32 reportHash) internal view {
        _check(agentId, reportHash, _verdict(requestHash));
    }

    function _verdict(bytes32 requestHash) private view returns (Verdict memory) {
        try validationRegistry.getValidationStatus(requestHash) returns (
            address v, uint256 a, uint8 r, bytes32 h, string memory t, uint256 u
        ) {
            return Verdict(v, a, r, h, keccak256(bytes(t)), u);
        } catch {
            revert("RequireTEE: no such validation request");
        }
    }

    function _check(uint256 agentId, bytes32 reportHash, Verdict memory v) private view {
        require(trustedValidator[v.validator], "RequireTEE: no verdict from a trusted validator");
        require(v.agentId == agentId, "RequireTEE: the verdict is for another agent");
        require(v.tagHash == TAG_TEE_ATTESTATION || v.tagHash == TAG_TEE, "RequireTEE: not a TEE verdict");
        require(v.response == 100, "RequireTEE: the verdict is not 100");
        require(block.timestamp <= v.lastUpdate + maxVerdictAge, "RequireTEE: the verdict is too old");
        address wallet = identityRegistry.getAgentWallet(agentId);
        require(
            wallet != address(0) && v.responseHash == keccak256(abi.encodePacked(wallet, reportHash)),
            "RequireTEE: the agent wallet is not the attested signer"
        );
    }
}

/// @title TEEGatedAction: the smallest contract that requires a TEE agent.
contract TEEGatedAction is RequireTEE {
    event Acted(uint256 indexed agentId, address indexed caller);

    constructor(address identity, address validation, address[] memory validators, uint256 maxAge)
        RequireTEE(identity, validation, validators, maxAge)
    {}

    function act(uint256 agentId, bytes32 requestHash, bytes32 reportHash)
        external
        requireTEE(agentId, requestHash, reportHash)
    {
        emit Acted(agentId, msg.sender);
    }
}
