#!/usr/bin/env node
// The CLI runs the compiled code in dist/ (npm run build, or npm start which builds first).
try {
  await import('../dist/cli/bin.js');
} catch (error) {
  if (error?.code === 'ERR_MODULE_NOT_FOUND' && String(error.message).includes('dist/cli/bin.js')) {
    process.stderr.write('tollgate: not built yet; run `npm run build` (or `npm start`) first\n');
    process.exit(1);
  }
  throw error;
}
