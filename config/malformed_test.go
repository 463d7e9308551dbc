package config

import (
	"strings"
	"testing"
)

// malformed are inputs a user can get wrong, each with the diagnostic it
// must produce, position included. want must equal one diagnostic line.
var malformed = []struct {
	name    string
	cluster bool
	src     string
	want    string
}{
	{"yaml: tab indentation", false, "nodes:\n  - id: a\n    path: ./a\n\tbad: tab\n",
		`f.yml:3: error: invalid YAML: found a tab character that violates indentation`},
	{"yaml: unclosed flow list", false, "nodes: [\n",
		`f.yml:1: error: invalid YAML: did not find expected node content`},
	{"empty file", false, "",
		`f.yml: error: the file is empty (a configuration needs at least one key)`},
	{"nodes not a list", false, "nodes: 3\n",
		`f.yml:1:8: error: nodes must be a list, not an integer`},
	{"unknown node field", false, "nodes:\n  - id: a\n    pathh: ./a\n",
		`f.yml:3:5: error: node "a": unknown field "pathh" (did you mean "path"?)`},
	{"operators not supported", false, "nodes:\n  - id: a\n    path: ./a\n    operators: []\n",
		`f.yml:4:5: error: node "a": "operators" is not supported (operators are not supported by adora; run the code as a node with path:)`},
	{"duplicate node id", false, "nodes:\n  - id: a\n    path: ./a\n  - id: a\n    path: ./b\n",
		`f.yml:4:5: error: duplicate node id "a" (first defined at f.yml:2:5)`},
	{"dangling source node", false, "nodes:\n  - id: a\n    path: ./a\n    inputs:\n      x: b/out\n",
		`f.yml:5:10: error: input "x" of node "a": source node "b" does not exist`},
	{"dangling output with hint", false, "nodes:\n  - id: a\n    path: ./a\n    outputs: [o]\n  - id: b\n    path: ./b\n    inputs:\n      x: a/oo\n",
		`f.yml:8:10: error: input "x" of node "b": node "a" has no output "oo" (did you mean "o"?)`},
	{"timer millis not integer", false, "nodes:\n  - id: a\n    path: ./a\n    inputs:\n      t: adora/timer/millis/abc\n",
		`f.yml:5:10: error: node "a": input "t": timer "adora/timer/millis/abc": millis must be a positive integer (got "abc")`},
	{"timer hz zero", false, "nodes:\n  - id: a\n    path: ./a\n    inputs:\n      t: adora/timer/hz/0\n",
		`f.yml:5:10: error: node "a": input "t": timer "adora/timer/hz/0": hz must be a positive finite number (got "0")`},
	{"timer unknown unit", false, "nodes:\n  - id: a\n    path: ./a\n    inputs:\n      t: adora/timer/mins/3\n",
		`f.yml:5:10: error: node "a": input "t": timer "adora/timer/mins/3": timer unit must be millis, secs or hz (got "mins")`},
	{"dora timer prefix", false, "nodes:\n  - id: a\n    path: ./a\n    inputs:\n      t: dora/timer/secs/3\n",
		`f.yml:5:10: error: node "a": input "t": unknown input source "dora/timer/secs/3" (did you mean "adora/timer/secs/3"?)`},
	{"node id with space", false, "nodes:\n  - id: a b\n    path: ./a\n",
		`f.yml:2:9: error: node id "a b" contains ' '; only letters, digits, '_', '.' and '-' are allowed`},
	{"node id leading dash", false, "nodes:\n  - id: -a\n    path: ./a\n",
		`f.yml:2:9: error: node id "-a" must not start with '-'`},
	{"node without id", false, "nodes:\n  - path: ./a\n",
		`f.yml:2:5: error: node id must not be empty (add id: NAME)`},
	{"node without path", false, "nodes:\n  - id: a\n",
		`f.yml:2:5: error: node "a" requires a path (add path: with the executable to run)`},
	{"restart policy typo", false, "nodes:\n  - id: a\n    path: ./a\n    restart_policy: onfailure\n",
		`f.yml:4:21: error: node "a": unknown restart_policy "onfailure" (did you mean "on-failure"?)`},
	{"max_restarts negative", false, "nodes:\n  - id: a\n    path: ./a\n    max_restarts: -1\n",
		`f.yml:4:19: error: node "a": max_restarts must be between 0 and 2147483647, not -1`},
	{"restart_delay not a duration", false, "nodes:\n  - id: a\n    path: ./a\n    restart_delay: soon\n",
		`f.yml:4:20: error: node "a": restart_delay: "soon" is not a duration (write seconds such as 1.5 or a duration such as "500ms")`},
	{"args unterminated quote", false, "nodes:\n  - id: a\n    path: ./a\n    args: \"a 'b\"\n",
		`f.yml:4:11: error: node "a": unterminated single quote in args (or write args as a list)`},
	{"env key with space", false, "nodes:\n  - id: a\n    path: ./a\n    env:\n      A B: x\n",
		`f.yml:5:7: error: env: environment variable name "A B" must be letters, digits and '_', not starting with a digit`},
	{"output listed twice", false, "nodes:\n  - id: a\n    path: ./a\n    outputs: [o, o]\n",
		`f.yml:4:18: error: node "a": output "o" is listed twice`},
	{"output id leading slash", false, "nodes:\n  - id: a\n    path: ./a\n    outputs: [/o]\n",
		`f.yml:4:15: error: node "a": output id "/o" must not start or end with '/' or contain '//'`},
	{"long input without source", false, "nodes:\n  - id: a\n    path: ./a\n    inputs:\n      x:\n        queue_size: 3\n",
		`f.yml:6:9: error: node "a": input "x": missing source (add source: NODE/OUTPUT)`},
	{"queue_size zero", false, "nodes:\n  - id: a\n    path: ./a\n    inputs:\n      x:\n        source: adora/timer/secs/1\n        queue_size: 0\n",
		`f.yml:7:21: error: node "a": input "x": queue_size must be between 1 and 1048576, not 0`},
	{"queue_policy typo", false, "nodes:\n  - id: a\n    path: ./a\n    inputs:\n      x:\n        source: adora/timer/secs/1\n        queue_policy: drop_newest\n",
		`f.yml:7:23: error: node "a": input "x": unknown queue_policy "drop_newest" (did you mean "drop_oldest"?)`},
	{"source without slash", false, "nodes:\n  - id: a\n    path: ./a\n    inputs:\n      x: nosource\n",
		`f.yml:5:10: error: node "a": input "x": input source "nosource" must have the form NODE/OUTPUT (write NODE/OUTPUT or adora/timer/millis/N)`},
	{"distribute typo", false, "nodes:\n  - id: a\n    path: ./a\n    _unstable_deploy:\n      machine: robot\n      distribute: ftp\n",
		`f.yml:6:19: error: node "a": _unstable_deploy: unknown distribute "ftp" (did you mean "http"?)`},
	{"deploy field typo", false, "nodes:\n  - id: a\n    path: ./a\n    _unstable_deploy:\n      machin: robot\n",
		`f.yml:5:7: error: node "a": _unstable_deploy: unknown field "machin" (did you mean "machine"?)`},
	{"deploy labels as list", false, "nodes:\n  - id: a\n    path: ./a\n    _unstable_deploy:\n      labels: [gpu]\n",
		`f.yml:5:15: error: node "a": _unstable_deploy.labels must be a mapping, not a list`},
	{"root strict_types", false, "strict_types: true\nnodes:\n  - id: a\n    path: ./a\n",
		`f.yml:1:1: error: dataflow: "strict_types" is not supported (type annotations are not supported by adora; remove it)`},
	{"output_types", false, "nodes:\n  - id: a\n    path: ./a\n    output_types:\n      o: std/core/v1/String\n",
		`f.yml:4:5: error: node "a": "output_types" is not supported (type annotations are not supported by adora; remove them)`},
	{"module", false, "nodes:\n  - id: a\n    path: ./a\n    module: x.yml\n",
		`f.yml:4:5: error: node "a": "module" is not supported (modules are not supported by adora; list the nodes in the dataflow)`},
	{"key set twice", false, "nodes:\n  - id: a\n    path: ./a\n    path: ./b\n",
		`f.yml:4:5: error: node "a": key "path" is set twice (first set at f.yml:3:5)`},
	{"second yaml document", false, "nodes:\n  - id: a\n    path: ./a\n---\nnodes: []\n",
		`f.yml:4:1: error: a configuration file holds one YAML document; found a second one (remove the '---' separator and everything after it)`},
	{"empty nodes list", false, "nodes: []\n",
		`f.yml:1:1: error: dataflow has no nodes (add nodes: with at least one node)`},
	{"path wrong type", false, "nodes:\n  - id: a\n    path: [x]\n",
		`f.yml:3:11: error: node "a": path must be a string, not a list`},
	{"ros2", false, "nodes:\n  - id: a\n    path: ./a\n    ros2: {}\n",
		`f.yml:4:5: error: node "a": "ros2" is not supported (ROS 2 bridges are not supported by adora)`},
	{"no machines", true, "coordinator:\n  addr: 10.0.0.1\nmachines: []\n",
		`f.yml:1:1: error: cluster config must define at least one machine (add a machines: list with at least one machine)`},
	{"duplicate machine id", true, "coordinator:\n  addr: 10.0.0.1\nmachines:\n  - id: a\n    host: h\n  - id: a\n    host: h2\n",
		`f.yml:6:5: error: duplicate machine id "a" (first defined at f.yml:4:5)`},
	{"machine without host", true, "coordinator:\n  addr: 10.0.0.1\nmachines:\n  - id: a\n",
		`f.yml:4:5: error: machine "a" host must not be empty (add host: IP-OR-HOSTNAME)`},
	{"machine without id", true, "coordinator:\n  addr: 10.0.0.1\nmachines:\n  - host: h\n",
		`f.yml:4:5: error: machine id must not be empty (add id: NAME)`},
	{"port out of range", true, "coordinator:\n  addr: 10.0.0.1\n  port: 70000\nmachines:\n  - id: a\n    host: h\n",
		`f.yml:3:9: error: coordinator.port must be between 1 and 65535, not 70000`},
	{"machine field typo", true, "coordinator:\n  addr: 10.0.0.1\nmachines:\n  - id: a\n    host: h\n    lables:\n      x: y\n",
		`f.yml:6:5: error: machine "a": unknown field "lables" (did you mean "labels"?)`},
	{"coordinator addr with space", true, "coordinator:\n  addr: bad host\nmachines:\n  - id: a\n    host: h\n",
		`f.yml:2:9: error: coordinator.addr "bad host" contains ' '; use an IP address or a host name`},
	{"missing coordinator", true, "machines:\n  - id: a\n    host: h\n",
		`f.yml:1:1: error: cluster: missing coordinator (add coordinator: {addr: IP-OR-HOSTNAME})`},
	{"machine id with semicolon", true, "coordinator:\n  addr: 10.0.0.1\nmachines:\n  - id: a;rm\n    host: h\n",
		`f.yml:4:9: error: machine id "a;rm" contains ';'; only letters, digits, '_', '.' and '-' are allowed`},
	{"host like ssh option", true, "coordinator:\n  addr: 10.0.0.1\nmachines:\n  - id: a\n    host: -oProxyCommand=x\n",
		`f.yml:5:11: error: machine "a": host "-oProxyCommand=x" must not start with '-'`},
	{"label value with space", true, "coordinator:\n  addr: 10.0.0.1\nmachines:\n  - id: a\n    host: h\n    labels:\n      gpu: \"a b\"\n",
		`f.yml:7:12: error: machine "a": labels: label value "a b" contains ' '; only letters, digits, '_', '.' and '-' are allowed`},
	{"local not bool", true, "coordinator:\n  addr: 10.0.0.1\nmachines:\n  - id: a\n    host: h\n    local: yes please\n",
		`f.yml:6:12: error: machine "a": local must be true or false, not a string`},
	{"two local machines", true, "coordinator:\n  addr: 10.0.0.1\nmachines:\n  - id: a\n    host: h\n    local: true\n  - id: b\n    host: h\n    local: true\n",
		`f.yml:7:5: error: machines "a" and "b" are both local (mark only the machine adora runs on)`},
	{"dataflow ref without path", true, "coordinator:\n  addr: 10.0.0.1\nmachines:\n  - id: a\n    host: h\ndataflows:\n  - name: x\n",
		`f.yml:7:5: error: dataflow "x": missing path (add path: FILE, or the nodes inline)`},
	{"duplicate dataflow name", true, "coordinator:\n  addr: 10.0.0.1\nmachines:\n  - id: a\n    host: h\ndataflows:\n  - name: x\n    path: a.yml\n  - name: x\n    path: b.yml\n",
		`f.yml:9:5: error: duplicate dataflow name "x" (first defined at f.yml:7:5)`},
	{"ssh port not int", true, "coordinator:\n  addr: 10.0.0.1\nmachines:\n  - id: a\n    host: h\nssh:\n  port: ssh\n",
		`f.yml:7:9: error: ssh.port must be an integer, not a string`},
	{"machines as mapping", true, "coordinator:\n  addr: 10.0.0.1\nmachines: {a: b}\n",
		`f.yml:3:11: error: machines must be a list, not a mapping`},
	{"machine id too long", true, "coordinator:\n  addr: 10.0.0.1\nmachines:\n  - id: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n    host: h\n",
		`f.yml:4:9: error: machine id "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" is 68 characters long; the limit is 63`},
	{"user leading dash", true, "coordinator:\n  addr: 10.0.0.1\nmachines:\n  - id: a\n    host: h\n    user: -x\n",
		`f.yml:6:11: error: machine "a": ssh user "-x" must not start with '-'`},
	{"coordinator field typo", true, "coordinator:\n  addr: 10.0.0.1\n  prot: 1\nmachines:\n  - id: a\n    host: h\n",
		`f.yml:3:3: error: coordinator: unknown field "prot" (did you mean "port"?)`},
	{"merge keys", true, "coordinator: &c\n  addr: 10.0.0.1\nmachines:\n  - id: a\n    host: h\n  - <<: *c\n",
		`f.yml:6:5: error: YAML merge keys (<<) are not supported (write the keys out)`},
	{"yaml: mapping value in scalar", false, "nodes:\n  - id: a\n    path: ./a: b\n",
		`f.yml:3: error: invalid YAML: mapping values are not allowed in this context`},
	{"hz not a number", false, "nodes:\n  - id: a\n    path: ./a\n    inputs:\n      t: adora/timer/hz/fast\n",
		`f.yml:5:10: error: node "a": input "t": timer "adora/timer/hz/fast": hz must be a positive finite number (got "fast")`},
	{"timer without value", false, "nodes:\n  - id: a\n    path: ./a\n    inputs:\n      t: adora/timer/secs\n",
		`f.yml:5:10: error: node "a": input "t": timer "adora/timer/secs": timer input must specify unit and value (write millis/100, secs/5 or hz/30)`},
	{"unknown adora input", false, "nodes:\n  - id: a\n    path: ./a\n    inputs:\n      t: adora/stop\n",
		`f.yml:5:10: error: node "a": input "t": unknown adora input "adora/stop" (the built-in source is adora/timer/UNIT/VALUE)`},
	{"empty path", false, "nodes:\n  - id: a\n    path: \"\"\n",
		`f.yml:3:11: error: node "a": path must not be empty (set it to the executable to run)`},
	{"input timeout negative", false, "nodes:\n  - id: a\n    path: ./a\n    inputs:\n      x:\n        source: adora/timer/secs/1\n        input_timeout: -2\n",
		`f.yml:7:24: error: node "a": input "x": input_timeout: -2 seconds must not be negative (write seconds such as 1.5 or a duration such as "500ms")`},
	{"deploy machine unsafe", false, "nodes:\n  - id: a\n    path: ./a\n    _unstable_deploy:\n      machine: \"robot 1\"\n",
		`f.yml:5:16: error: node "a": _unstable_deploy: machine id "robot 1" contains ' '; only letters, digits, '_', '.' and '-' are allowed`},
	{"inputs as list", false, "nodes:\n  - id: a\n    path: ./a\n    inputs: [a/b]\n",
		`f.yml:4:13: error: node "a": inputs must be a mapping of input id to source, not a list`},
	{"reserved node id", false, "nodes:\n  - id: adora\n    path: ./a\n",
		`f.yml:2:9: error: node id "adora" is reserved for built-in inputs such as adora/timer/millis/100`},
	{"node as string", false, "nodes:\n  - a\n",
		`f.yml:2:5: error: a node must be a mapping, not a string`},
	{"null host", true, "coordinator:\n  addr: 10.0.0.1\nmachines:\n  - id: a\n    host:\n",
		`f.yml:5:10: error: machine "a": host must not be empty (set it to an IP address or host name)`},
	{"empty host", true, "coordinator:\n  addr: 10.0.0.1\nmachines:\n  - id: a\n    host: \"\"\n",
		`f.yml:5:11: error: machine "a": host must not be empty`},
	{"addr missing", true, "coordinator:\n  port: 6013\nmachines:\n  - id: a\n    host: h\n",
		`f.yml:2:3: error: coordinator: missing addr (set addr to the IP address or host name machines use to reach the coordinator)`},
	{"dataflow file as cluster", true, "nodes:\n  - id: a\n    path: ./a\n",
		`f.yml:1:1: error: cluster: "nodes" is not supported (this is a dataflow key; pass dataflow files separately or list them under dataflows:)`},
	{"cluster file as dataflow", false, "coordinator:\n  addr: 10.0.0.1\n",
		`f.yml:1:1: error: dataflow: "coordinator" is not supported (this is a cluster key; pass the cluster file with -cluster or as a cluster file)`},
}

func TestMalformed(t *testing.T) {
	if len(malformed) < 40 {
		t.Fatalf("only %d malformed cases; the bar is 40", len(malformed))
	}
	for _, tt := range malformed {
		t.Run(tt.name, func(t *testing.T) {
			var diags Diagnostics
			if tt.cluster {
				_, diags = ParseCluster([]byte(tt.src), "f.yml")
			} else {
				_, diags = ParseDataflow([]byte(tt.src), "f.yml")
			}
			if !diags.HasErrors() || diags.Err() == nil {
				t.Fatalf("no error for:\n%s", tt.src)
			}
			found := false
			for _, d := range diags {
				found = found || d.String() == tt.want
				assertHuman(t, d)
			}
			if !found {
				t.Fatalf("diagnostics:\n%v\nwant a line equal to:\n%s", diags, tt.want)
			}
		})
	}
}

// assertHuman fails when a diagnostic leaks Go internals.
func assertHuman(t *testing.T, d Diagnostic) {
	t.Helper()
	s := d.String()
	for _, leak := range []string{"yaml: ", "!!", "cty.", "reflect", "runtime error", "%!", "<nil>", "config."} {
		if strings.Contains(s, leak) {
			t.Errorf("diagnostic leaks %q: %s", leak, s)
		}
	}
	if d.Pos.File == "" {
		t.Errorf("diagnostic without a file: %s", s)
	}
}
