package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
)

// ConfigEnv is the environment variable that carries a node's Config as
// JSON. The daemon sets it for every node process it spawns.
const ConfigEnv = "ADORA_NODE_CONFIG"

// ConfigVersion is the version of the Config JSON document.
const ConfigVersion = 1

// Config is what a node learns from its daemon at start: who it is, what it
// may send and receive, and where the daemon listens. It is the JSON value
// of ADORA_NODE_CONFIG.
type Config struct {
	Version      int           `json:"version"`
	DataflowID   string        `json:"dataflow_id"`
	NodeID       string        `json:"node_id"`
	Inputs       []InputConfig `json:"inputs,omitempty"`
	Outputs      []string      `json:"outputs,omitempty"`
	Socket       string        `json:"socket"`         // unix stream socket of the daemon
	Secret       string        `json:"secret"`         // per-spawn registration secret; never log it
	ShmThreshold int           `json:"shm_threshold"`  // payloads of at least this size go through shared memory
	RestartCount int           `json:"restart_count"`  // 0 on the first start
	ShmPoolBytes int64         `json:"shm_pool_bytes"` // cap on the sender's region pool (0 = default)
}

// InputConfig describes one input of the node.
type InputConfig struct {
	ID           string `json:"id"`
	Source       string `json:"source"` // "node/output" or "adora/timer/..."
	QueueSize    int    `json:"queue_size"`
	QueuePolicy  string `json:"queue_policy"`
	InputTimeout string `json:"input_timeout,omitempty"` // Go duration syntax
}

// ConfigFromEnv reads and validates ADORA_NODE_CONFIG.
func ConfigFromEnv() (Config, error) {
	raw := os.Getenv(ConfigEnv)
	if raw == "" {
		return Config{}, fmt.Errorf("%s is not set: start this program through adora (adora run dataflow.yml)", ConfigEnv)
	}
	var c Config
	if err := json.Unmarshal([]byte(raw), &c); err != nil {
		return Config{}, fmt.Errorf("decode %s: %w", ConfigEnv, err)
	}
	if err := c.validate(); err != nil {
		return Config{}, fmt.Errorf("%s: %w", ConfigEnv, err)
	}
	return c, nil
}

func (c Config) validate() error {
	switch {
	case c.Version != ConfigVersion:
		return fmt.Errorf("config version %d, this SDK speaks %d", c.Version, ConfigVersion)
	case c.NodeID == "":
		return errors.New("node_id is empty")
	case c.Socket == "":
		return errors.New("socket is empty")
	}
	return nil
}

// Encode renders c as the JSON value of ADORA_NODE_CONFIG.
func (c Config) Encode() (string, error) {
	b, err := json.Marshal(c)
	return string(b), err
}
