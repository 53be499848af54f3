// Validates CycloneDX 1.5 JSON documents against the official schema shipped in the npm package
// @cyclonedx/cyclonedx-library, with ajv (draft-07) and the formats the schema uses.
// Usage: node cyclonedx-validate.js MODULES_DIR FILE...   Exit 0 all valid, 1 any invalid, 2 usage.
'use strict';
const fs = require('fs');
const path = require('path');

const [modules, ...files] = process.argv.slice(2);
if (!modules || files.length === 0) {
  console.error('usage: cyclonedx-validate.js MODULES_DIR FILE...');
  process.exit(2);
}
const need = (name) => require(path.join(modules, name));
const Ajv = need('ajv').default;
const addFormats = need('ajv-formats').default;
const addFormats2019 = need('ajv-formats-draft2019');
const schemaDir = path.join(modules, '@cyclonedx/cyclonedx-library/res/schema');
const load = (name) => JSON.parse(fs.readFileSync(path.join(schemaDir, name), 'utf8'));

// The 1.5 schema refers to its neighbours by their SNAPSHOT file names; register them there.
const spdx = load('spdx.SNAPSHOT.schema.json');
spdx.$id = 'http://cyclonedx.org/schema/spdx.SNAPSHOT.schema.json';
const jsf = load('jsf-0.82.SNAPSHOT.schema.json');
jsf.$id = 'http://cyclonedx.org/schema/jsf-0.82.SNAPSHOT.schema.json';
const bom = load('bom-1.5.SNAPSHOT.schema.json');

const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: true });
addFormats(ajv);
addFormats2019(ajv);
ajv.addSchema(spdx);
ajv.addSchema(jsf);
const validate = ajv.compile(bom);

let bad = 0;
for (const file of files) {
  let doc;
  try {
    doc = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    console.log(`${file}: INVALID: not JSON: ${e.message}`);
    bad++;
    continue;
  }
  if (doc.specVersion !== '1.5') {
    console.log(`${file}: INVALID: specVersion is ${JSON.stringify(doc.specVersion)}, not "1.5"`);
    bad++;
    continue;
  }
  if (validate(doc)) {
    console.log(`${file}: valid CycloneDX 1.5`);
  } else {
    bad++;
    for (const err of validate.errors) {
      console.log(`${file}: INVALID: ${err.instancePath || '/'} ${err.message} ` +
                  JSON.stringify(err.params));
    }
  }
}
process.exit(bad === 0 ? 0 : 1);
