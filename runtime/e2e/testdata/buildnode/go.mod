module example.com/buildnode

go 1.21
