# One file for the whole project: the edge AI pipeline written inline.
coordinator {
  addr = "192.168.1.1"
}

machine "robot" {
  host   = "192.168.1.10"
  user   = "ubuntu"
  labels = { role = "edge" }
}

machine "gpu-server" {
  host   = "192.168.1.20"
  user   = "ml"
  labels = { gpu = "true" }
}

dataflow "edge-ai" {
  env = { RUST_LOG = "info" }

  node "camera" {
    path    = "./camera-driver"
    outputs = ["frames"]
    deploy {
      machine = "robot"
    }
  }

  node "inference" {
    path    = "./ml-model"
    inputs  = { frames = "camera/frames" }
    outputs = ["predictions"]
    deploy {
      labels = { gpu = "true" }
    }
  }

  node "actuator" {
    path   = "./actuator-driver"
    inputs = { commands = "inference/predictions" }
    deploy {
      machine = "robot"
    }
  }
}

dataflow "logger" {
  path = "logger.yml"
}
