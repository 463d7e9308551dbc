coordinator {
  addr = "10.0.0.1"
}

locals {
  bots = {
    "bot-01" = { host = "10.0.0.11", labels = { lidar = "true" } }
    "bot-02" = { host = "10.0.0.12", labels = { camera = "rgbd" } }
    "bot-03" = { host = "10.0.0.13", labels = { lidar = "true", camera = "rgbd" } }
  }
}

machine "bot" {
  for_each = local.bots
  id       = each.key
  host     = each.value.host
  user     = "robot"
  labels   = merge({ fleet = "warehouse" }, each.value.labels)
}
