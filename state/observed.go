package state

// Observed is what a refresh saw: the live machines and the dataflows the
// coordinator runs. It is data only; apply's refresh fills it in.
type Observed struct {
	// CoordinatorReachable is false when the coordinator could not be
	// asked; daemon and dataflow facts are then unknown.
	CoordinatorReachable bool                           `json:"coordinator_reachable"`
	CoordinatorError     string                         `json:"coordinator_error,omitempty"`
	Machines             map[string]MachineObservation  `json:"machines"`
	Dataflows            map[string]DataflowObservation `json:"dataflows"`
}

// MachineObservation is one machine as seen over SSH and by the
// coordinator.
type MachineObservation struct {
	ID        string `json:"id"`
	Reachable bool   `json:"reachable"`
	Error     string `json:"error,omitempty"`

	UnitPresent bool   `json:"unit_present"`
	UnitActive  bool   `json:"unit_active"`
	UnitEnabled bool   `json:"unit_enabled"`
	UnitHash    string `json:"unit_hash,omitempty"`

	BinarySHA256  string `json:"binary_sha256,omitempty"`
	BinaryVersion string `json:"binary_version,omitempty"`

	DaemonConnected bool              `json:"daemon_connected"`
	DaemonVersion   string            `json:"daemon_version,omitempty"`
	DaemonLabels    map[string]string `json:"daemon_labels,omitempty"`
}

// DaemonRunning reports whether the machine's daemon is up: its unit is
// active or the coordinator sees it connected.
func (m MachineObservation) DaemonRunning() bool { return m.UnitActive || m.DaemonConnected }

// DataflowObservation is one dataflow the coordinator reports running.
type DataflowObservation struct {
	Name       string            `json:"name"`
	UUID       string            `json:"uuid"`
	Placements map[string]string `json:"placements"` // node ID -> machine ID
}
