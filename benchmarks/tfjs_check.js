// Runs a TF.js graph model (tensorflowjs_converter's output) on the reference images that
// benchmarks/tfjs.py wrote, with the pure-JavaScript CPU backend of @tensorflow/tfjs, and prints
// one JSON line: the probabilities and the milliseconds the batch took.
//
//   NODE_PATH=DIR/node_modules node benchmarks/tfjs_check.js MODEL_DIR REFERENCE.json
const fs = require("fs");
const path = require("path");
const tf = require("@tensorflow/tfjs");

function loadFromDisk(dir) {
  const modelJson = JSON.parse(fs.readFileSync(path.join(dir, "model.json")));
  const weightSpecs = [];
  const buffers = [];
  for (const group of modelJson.weightsManifest) {
    weightSpecs.push(...group.weights);
    for (const shard of group.paths) buffers.push(fs.readFileSync(path.join(dir, shard)));
  }
  const all = Buffer.concat(buffers);
  const weightData = all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength);
  const handler = tf.io.fromMemory({ modelTopology: modelJson.modelTopology, weightSpecs, weightData });
  return { modelJson, handler };
}

async function main() {
  const [dir, referencePath] = process.argv.slice(2);
  await tf.setBackend("cpu");
  const { modelJson, handler } = loadFromDisk(dir);
  const model = await tf.loadGraphModel(handler);
  const reference = JSON.parse(fs.readFileSync(referencePath));
  // TF.js has no uint8 tensors: the converter maps the uint8 input to int32.
  const images = tf.tensor(reference.images.flat(), reference.shape, "int32");
  const started = Date.now();
  const output = model.execute({ images });
  const probabilities = await (Array.isArray(output) ? output[0] : output).array();
  const ms = Date.now() - started;
  const metadata = modelJson.userDefinedMetadata || {};
  console.log(JSON.stringify({ probabilities, ms, metadata, tfjs: tf.version.tfjs }));
}

main().catch((error) => {
  console.error(String(error));
  process.exit(1);
});
