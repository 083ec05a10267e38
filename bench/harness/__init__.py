"""bench/compare: shardgate side by side with nginx, HAProxy and Envoy.

Modules, in the order a run uses them:
  scenarios   the scenario table (what is requested, how)
  contenders  how each proxy is started, stopped and versioned
  procstat    CPU time and resident memory from /proc
  setup       install what is missing, build, record the machine
  runner      one load run, one memory run, the round loop
  summary     medians, spreads, ratios paired within a round, targets
  report      markdown and JSON
  chart       the SVG chart
  wrkcheck    shardgate-load against wrk on the same targets
Standard library only.
"""
