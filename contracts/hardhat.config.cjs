// The local chain of `omnihub stack up`: `npx hardhat node` with a fixed chain id.
// Hardhat never compiles here (solc-js in build.cjs does, offline), so no compiler is
// downloaded; its own paths point into the stack's state folder, never into the repo.
const path = require("path");

const state = process.env.OMNIHUB_CHAIN_STATE_DIR || path.join(__dirname, "..", ".omnihub", "chain");

module.exports = {
  networks: {
    hardhat: {
      chainId: Number(process.env.OMNIHUB_CHAIN_ID || 31337),
      hardfork: "cancun",
      // Blocks are mined as transactions arrive, and one a second besides (as a real
      // chain would), so the chain watcher's confirmations come without traffic.
      mining: { auto: true, interval: Number(process.env.OMNIHUB_CHAIN_BLOCK_MS || 1000) },
      // One log line per JSON-RPC call would grow without bound under a polling watcher;
      // OMNIHUB_CHAIN_LOG=1 turns it on for debugging.
      loggingEnabled: process.env.OMNIHUB_CHAIN_LOG === "1",
    },
  },
  paths: {
    sources: path.join(__dirname, "src"),
    cache: path.join(state, "hardhat-cache"),
    artifacts: path.join(state, "hardhat-artifacts"),
  },
};
