// Validate Prometheus Operator objects (JSON array on stdin) with the schemas compiled into
// @kubernetes-models/prometheus-operator; prints one JSON list of "<kind> <name>: <error>" lines.
const root = process.argv[2];
const input = JSON.parse(await new Promise((resolve) => {
  let data = "";
  process.stdin.on("data", (chunk) => (data += chunk));
  process.stdin.on("end", () => resolve(data));
}));
const errors = [];
for (const manifest of input) {
  const [group, version] = manifest.apiVersion.split("/");
  const module = await import(`${root}/node_modules/@kubernetes-models/prometheus-operator/${group}/${version}/${manifest.kind}.js`);
  try {
    new module[manifest.kind](manifest).validate();
  } catch (e) {
    errors.push(`${manifest.kind} ${manifest.metadata?.name}: ${e.message}`);
  }
}
console.log(JSON.stringify(errors));
