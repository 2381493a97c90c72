"""`python3 -m rayserve_pulumi.node_agent head|worker|sync|stop ...` (see bootstrap)."""
from rayserve_pulumi.node_agent.bootstrap import main

main()
