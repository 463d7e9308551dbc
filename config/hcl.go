package config

func decodeClusterHCL(src []byte, file string, opts Options) (*Cluster, Pos, Diagnostics) {
	return nil, Pos{}, nil
}

func decodeDataflowHCL(src []byte, file string, opts Options) (*Dataflow, Pos, Diagnostics) {
	return nil, Pos{}, nil
}
