// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";

/// @title OmniHub membership
/// @notice One ERC-721 token per membership. Each token carries a tier and an expiry; a
/// wallet holding an unexpired token gets that tier's entitlements. The owner, or an
/// account with MINTER_ROLE, mints, renews and revokes. Every change emits an event (and
/// ERC-721's Transfer), so an off-chain watcher can rebuild memberships from logs alone.
contract OmniHubMembership is ERC721, AccessControl, Ownable {
    /// @notice Tiers in the order of their enum values; 0 is "no membership".
    enum Tier {
        None,
        Starter,
        Pro,
        Enterprise
    }

    struct Membership {
        Tier tier;
        uint64 expiresAt; // unix seconds; the membership is active while block.timestamp < expiresAt
    }

    bytes32 public constant MINTER_ROLE = keccak256("MINTER_ROLE");

    mapping(uint256 tokenId => Membership) private _memberships;
    uint256 private _nextTokenId = 1;

    event MembershipMinted(uint256 indexed tokenId, address indexed holder, Tier tier, uint64 expiresAt);
    event MembershipRenewed(uint256 indexed tokenId, address indexed holder, uint64 previousExpiresAt, uint64 expiresAt);
    event MembershipRevoked(uint256 indexed tokenId, address indexed holder, Tier tier);

    error NotOwnerNorMinter(address account);
    error InvalidTier(Tier tier);
    error ExpiryNotInFuture(uint64 expiresAt);
    error ExpiryNotExtended(uint64 currentExpiresAt, uint64 expiresAt);

    modifier onlyOwnerOrMinter() {
        if (msg.sender != owner() && !hasRole(MINTER_ROLE, msg.sender)) {
            revert NotOwnerNorMinter(msg.sender);
        }
        _;
    }

    /// @param initialOwner owns the contract and administers MINTER_ROLE.
    constructor(address initialOwner) ERC721("OmniHub Membership", "OHM") Ownable(initialOwner) {
        _grantRole(DEFAULT_ADMIN_ROLE, initialOwner);
    }

    /// @notice Mint a membership of `tier` to `to`, active until `expiresAt`.
    function mint(address to, Tier tier, uint64 expiresAt) external onlyOwnerOrMinter returns (uint256 tokenId) {
        if (tier == Tier.None) revert InvalidTier(tier);
        if (expiresAt <= block.timestamp) revert ExpiryNotInFuture(expiresAt);
        tokenId = _nextTokenId++;
        _memberships[tokenId] = Membership(tier, expiresAt);
        // _mint, not _safeMint: no callback into the recipient, so no reentrancy here.
        _mint(to, tokenId);
        emit MembershipMinted(tokenId, to, tier, expiresAt);
    }

    /// @notice Move a membership's expiry later (also revives an expired one).
    function renew(uint256 tokenId, uint64 expiresAt) external onlyOwnerOrMinter {
        address holder = _requireOwned(tokenId);
        Membership storage current = _memberships[tokenId];
        if (expiresAt <= block.timestamp) revert ExpiryNotInFuture(expiresAt);
        if (expiresAt <= current.expiresAt) revert ExpiryNotExtended(current.expiresAt, expiresAt);
        uint64 previous = current.expiresAt;
        current.expiresAt = expiresAt;
        emit MembershipRenewed(tokenId, holder, previous, expiresAt);
    }

    /// @notice End a membership now: the token is burnt.
    function revoke(uint256 tokenId) external onlyOwnerOrMinter {
        address holder = _requireOwned(tokenId);
        Tier tier = _memberships[tokenId].tier;
        delete _memberships[tokenId];
        _burn(tokenId);
        emit MembershipRevoked(tokenId, holder, tier);
    }

    /// @notice The token's tier, expiry and whether it is active now.
    function membershipOf(uint256 tokenId) external view returns (Tier tier, uint64 expiresAt, bool active) {
        _requireOwned(tokenId);
        Membership memory m = _memberships[tokenId];
        return (m.tier, m.expiresAt, block.timestamp < m.expiresAt);
    }

    /// @notice True while the token exists and has not expired.
    function isActive(uint256 tokenId) external view returns (bool) {
        return _ownerOf(tokenId) != address(0) && block.timestamp < _memberships[tokenId].expiresAt;
    }

    function supportsInterface(bytes4 interfaceId) public view override(ERC721, AccessControl) returns (bool) {
        return super.supportsInterface(interfaceId);
    }
}
