// The ESM entry re-exports the CommonJS build so `import` and `require` share one class.
const fs = require('fs')
const path = require('path')
const out = path.join(__dirname, '..', 'dist', 'index.mjs')
fs.writeFileSync(out, [
  "import nomadcore from './index.js'",
  'export default nomadcore',
  'export const Hypercore = nomadcore',
  'export const errors = nomadcore.errors',
  'export const Store = nomadcore.Store',
  'export const reconcile = nomadcore.reconcile',
  'export const importStore = nomadcore.importStore',
  ''
].join('\n'))
