"""Where runs execute. base.py is the seam (`Executor`, `RunSpec`, `RunHandle`, `RunExit`); each executor
implements it, and `bridge.app.build_executor` chooses one from `executor.kind`.

    local.py          runs as processes of this machine (child.py starts them; process_group.py, metrics_file.py,
                      environment.py, startable.py: their group, metrics, environment, start checks)
    ray.py            runs on a Ray cluster, each spawned on its node by the local executor's spawn; the only
                      module that imports ray
    workspace.py      a run's folders and its git `init` steps, done where the run runs
"""
