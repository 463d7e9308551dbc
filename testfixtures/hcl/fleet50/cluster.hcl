# 50 warehouse robots, every fifth one with a lidar, plus a GPU server.
variable "robots" {
  type    = number
  default = 50
}

variable "ssh_user" {
  default = "robot"
}

coordinator {
  addr = "coordinator.fleet.example"
  port = 7000
}

ssh {
  user          = var.ssh_user
  identity_file = "~/.ssh/fleet_ed25519"
}

machine "bot" {
  count = var.robots
  id    = format("bot-%02d", count.index + 1)
  host  = "10.0.1.${count.index + 1}"
  labels = merge(
    { fleet = "warehouse" },
    (count.index + 1) % 5 == 0 ? { lidar = "true" } : {},
  )
}

machine "gpu-server" {
  host = "10.0.0.3"
  user = "ml"
  port = 2222
  labels = { gpu = "true" }
}

dataflow "navigation" {
  path = "../full/dataflow.yml"
}
