node "lidar-driver" {
  path    = "./lidar-driver"
  outputs = ["scans"]
  deploy {
    labels = { lidar = true }
  }
}

node "camera-driver" {
  path    = "./camera-driver"
  outputs = ["frames"]
  deploy {
    labels = { camera = "rgbd" }
  }
}
