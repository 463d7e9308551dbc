env = {
  RUST_LOG = "info"
  FLEET    = "warehouse"
}

locals {
  rate = 10
}

node "lidar" {
  name        = "Lidar driver"
  description = "Reads scans from the lidar"
  path        = "./bin/lidar"
  args        = ["--port", "/dev/ttyUSB0", "--rate", "${local.rate} Hz"]
  env = {
    RUST_LOG = "debug"
    RETRIES  = 3
  }
  build   = <<-EOT
    cargo build --release -p lidar
    strip target/release/lidar
  EOT
  inputs  = { tick = "adora/timer/millis/100" }
  outputs = ["scans", "status/health"]

  restart_policy    = "on-failure"
  max_restarts      = 3
  restart_delay     = "500ms"
  max_restart_delay = 8
  restart_window    = "1m"

  deploy {
    labels      = { lidar = "true" }
    distribute  = "scp"
    working_dir = "/opt/fleet"
  }
}

node "planner" {
  path = "./bin/planner"
  args = "--map warehouse.yaml"
  inputs = {
    scans = {
      source        = "lidar/scans"
      queue_size    = 2
      queue_policy  = "backpressure"
      input_timeout = 1.5
    }
    health    = "lidar/status/health"
    heartbeat = "adora/timer/hz/2.5"
    slow      = "adora/timer/secs/5"
  }
  outputs        = ["plan"]
  restart_policy = "always"
  deploy {
    machine    = "gpu-server"
    distribute = "http"
  }
}

node "logger" {
  path   = "./bin/logger"
  inputs = { plan = "planner/plan" }
}
