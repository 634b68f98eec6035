"""Solidity and web3: the membership NFT that gates paid tiers."""
