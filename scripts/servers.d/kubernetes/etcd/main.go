// Command etcd runs the etcd server from go.etcd.io/etcd/server/v3 at the version this
// module pins, the one k8s.io/kubernetes itself tests against.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
