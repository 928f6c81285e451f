// Builds the portal's script: node portal/build.mjs [outfile]. The bundle is committed
// (portal/static/app.js); a unit test builds it again and checks that it is unchanged.
import { build } from "esbuild";

const outfile = process.argv[2] || "portal/static/app.js";

await build({
  entryPoints: ["portal/src/main.js"],
  bundle: true,
  format: "esm",
  target: ["es2022"],
  minify: true,
  legalComments: "eof",
  charset: "utf8",
  outfile,
  logLevel: "warning",
});
