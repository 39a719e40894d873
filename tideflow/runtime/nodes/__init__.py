"""Node executors: one small module per node type of ``tideflow.core.catalog``, and the registry.

``base`` defines what an executor receives (:class:`~tideflow.runtime.nodes.base.NodeContext`) and
returns (:class:`~tideflow.runtime.nodes.base.NodeOutcome`); ``registry`` maps type ids to modules.
"""
